"""A custom WebSocket handler: engine accepts the socket, then hands it over."""

from starlette.websockets import WebSocket, WebSocketDisconnect


async def shout(websocket: WebSocket) -> None:
    """Answer each text message in capitals, with its length; say goodbye on "bye"."""
    await websocket.send_json({"hello": "send text; 'bye' ends"})
    try:
        while True:
            text = await websocket.receive_text()
            if text.strip().lower() == "bye":
                await websocket.send_json({"goodbye": True})
                return
            await websocket.send_json({"shout": text.upper(), "length": len(text)})
    except WebSocketDisconnect:
        return
