"""python -m services.memory"""
import asyncio

from services.memory.server import main

if __name__ == "__main__":
    asyncio.run(main())
