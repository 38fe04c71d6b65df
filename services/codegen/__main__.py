"""python -m services.codegen"""
import asyncio

from services.codegen.server import main

if __name__ == "__main__":
    asyncio.run(main())
