"""A WebSocket handler of our own."""

from starlette.websockets import WebSocket


async def shout(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())
