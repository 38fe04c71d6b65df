import asyncio

from services.sandbox.server import main

if __name__ == "__main__":
    asyncio.run(main())
