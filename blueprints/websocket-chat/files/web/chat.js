// Joins /chat/<room> on this page's own origin; shows what the others in the room send.
const log = document.getElementById("log");
let socket = null;

function show(text) {
  const line = document.createElement("div");
  line.textContent = text;
  log.appendChild(line);
  log.scrollTop = log.scrollHeight;
}

document.getElementById("join").addEventListener("click", () => {
  if (socket) socket.close();
  const room = encodeURIComponent(document.getElementById("room").value || "lobby");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/chat/${room}`);
  socket.onopen = () => show(`joined ${decodeURIComponent(room)}`);
  socket.onmessage = (event) => {
    if (!event.data.includes('"type": "ping"') && !event.data.includes('"type":"ping"')) {
      show(event.data);
    }
  };
  socket.onclose = () => show("disconnected");
});

document.getElementById("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = document.getElementById("text");
  if (socket && text.value) {
    socket.send(text.value);
    show(`me: ${text.value}`);
    text.value = "";
  }
});
