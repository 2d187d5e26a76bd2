// Calls the api app through web's proxy route (same origin, so no CORS needed).
const button = document.getElementById("greet");
const result = document.getElementById("result");

button.addEventListener("click", async () => {
  const name = document.getElementById("name").value || "browser";
  result.textContent = "…";
  try {
    const response = await fetch(`/api/greeting?name=${encodeURIComponent(name)}`);
    const data = await response.json();
    result.textContent = response.ok
      ? `${data.message} (${data.at})`
      : `Error ${response.status}: ${JSON.stringify(data.detail)}`;
  } catch (error) {
    result.textContent = `Request failed: ${error}`;
  }
});
