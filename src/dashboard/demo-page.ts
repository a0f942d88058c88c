// /demo (dev mode only): a small chat page on the SDK to try two users in two tabs.
// (No backticks or dollar-brace inside DEMO_JS: it is a TS template string.)
import { ID_HTML_PATTERN } from "../protocol/grammar.ts";
import { pageHead } from "./style.ts";

export const DEMO_HTML = `${pageHead("wsgate demo")}
<body>
<header>
  <h1>wsgate demo</h1>
  <span id="me" class="muted"></span>
  <span id="state" class="badge none">idle</span>
  <span id="where" class="muted"></span>
  <span class="spacer"></span>
  <span class="muted">dev mode: <code>?user=</code> is trusted</span>
</header>
<main>
  <section id="pick" class="login hidden">
    <h2>Pick a user</h2>
    <p class="muted">Open this page in two tabs with two different names to chat between them.</p>
    <form id="pick-form" class="row" autocomplete="off">
      <input id="pick-user" placeholder="alice" aria-label="user id" required pattern="${ID_HTML_PATTERN}">
      <button type="submit">Connect</button>
    </form>
  </section>

  <div id="chat" class="grid2 hidden">
    <div>
      <section>
        <h2>Direct message</h2>
        <form id="send-form" class="row" autocomplete="off">
          <input id="send-to" placeholder="to (bob)" aria-label="recipient" required size="10">
          <input id="send-text" placeholder="message" aria-label="message" required>
          <button type="submit">Send</button>
        </form>
      </section>
      <section>
        <h2>Room</h2>
        <form id="join-form" class="row" autocomplete="off">
          <input id="room" value="lobby" aria-label="room" required size="12">
          <button type="submit">Join</button>
          <button id="leave" class="secondary" type="button">Leave</button>
        </form>
        <form id="publish-form" class="row" autocomplete="off">
          <input id="publish-text" placeholder="message to the room" aria-label="room message" required>
          <button type="submit">Publish</button>
        </form>
        <div class="muted">joined: <span id="rooms">none</span></div>
      </section>
      <section>
        <h2>Presence</h2>
        <form id="presence-form" class="row" autocomplete="off">
          <input id="presence-users" placeholder="bob, carol" aria-label="users" required>
          <button type="submit">Who is online?</button>
          <button id="who-room" class="secondary" type="button">Who is in the room?</button>
        </form>
        <div id="presence-result"></div>
      </section>
    </div>
    <section>
      <h2>Events</h2>
      <div id="log" class="log" aria-live="polite"></div>
    </section>
  </div>
</main>
<script type="module" src="/demo/app.js"></script>
</body>
</html>
`;

export const DEMO_JS = `import { WsgateClient } from "/demo/wsgate-client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const user = params.get("user");
// ?region= goes to the front door (\`bun run cluster --front\`), which picks a gateway in that region
// or the nearest ready one; a gateway reached directly ignores it.
const region = params.get("region");

function log(kind, text) {
  const box = $("log");
  const line = document.createElement("div");
  line.className = kind;
  line.dataset.kind = kind;
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = new Date().toLocaleTimeString();
  line.append(t, document.createTextNode(text));
  box.append(line);
  while (box.childElementCount > 500) box.firstElementChild.remove();
  box.scrollTop = box.scrollHeight;
}

const show = (data) => (typeof data === "string" ? data : JSON.stringify(data));

if (!user) {
  $("pick").classList.remove("hidden");
  $("pick-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const u = $("pick-user").value.trim();
    if (u) location.search = "?user=" + encodeURIComponent(u) + (region ? "&region=" + encodeURIComponent(region) : "");
  });
} else {
  $("chat").classList.remove("hidden");
  $("me").textContent = "you are " + user;
  document.title = user + " · wsgate demo";
  const url = location.origin + "/ws" + (region ? "?region=" + encodeURIComponent(region) : "");
  const client = new WsgateClient({ url, user });
  window.wsgate = client; // for poking at it from the console

  const stateBadge = $("state");
  client.on("state", (s) => {
    stateBadge.textContent = s;
    stateBadge.className = "badge " + (s === "open" ? "ok" : s === "closed" ? "bad" : "warn");
    if (s !== "open") log("state", s);
  });
  client.on("open", (i) => {
    $("where").textContent = "on " + i.welcome.gateway + " (" + i.welcome.region + ")";
    let note = "";
    if (i.recovered === true) note = ", resumed (" + i.replayed + " replayed)";
    if (i.recovered === false) note = ", some messages were lost while away";
    log("state", "connected to " + i.welcome.gateway + note);
  });
  client.on("message", (m) => {
    if ("room" in m) log("message", "[" + m.room + "] " + (m.from ?? "admin") + ": " + show(m.data));
    else if ("broadcast" in m) log("message", "[broadcast] " + show(m.data));
    else log("message", (m.from ?? "admin") + " → you: " + show(m.data));
  });
  client.on("room", (e) => log("room", "[" + e.room + "] " + e.user + (e.event === "join" ? " joined" : " left")));
  client.on("error", (e) => log("error", e.code + ": " + e.message));
  client.on("disconnect", (d) => log("state", "disconnected (" + d.code + (d.reason ? " " + d.reason : "") + ")"));

  const fail = (what) => (e) => log("error", what + " failed: " + e.code + ": " + e.message);
  const showRooms = () => ($("rooms").textContent = client.joinedRooms.join(", ") || "none");

  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const to = $("send-to").value.trim();
    const text = $("send-text").value;
    client.send(to, text).then(() => {
      log("sent", "you → " + to + ": " + text);
      $("send-text").value = "";
    }, fail("send"));
  });
  $("join-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const room = $("room").value.trim();
    client.join(room).then(() => log("room", "you joined " + room), fail("join")).finally(showRooms);
    showRooms();
  });
  $("leave").addEventListener("click", () => {
    const room = $("room").value.trim();
    client.leave(room).then(() => log("room", "you left " + room), fail("leave")).finally(showRooms);
    showRooms();
  });
  $("publish-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("publish-text").value;
    client.publish($("room").value.trim(), text).then(() => ($("publish-text").value = ""), fail("publish"));
  });
  $("presence-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const users = $("presence-users").value.split(/[\\s,]+/).filter(Boolean);
    client.presence(users).then((p) => {
      const parts = Object.entries(p.users).map(([u, s]) =>
        u + ": " + (s.online ? "online (" + s.connections + " conn, " + s.regions.join("/") + ")" : "offline"));
      $("presence-result").textContent = parts.join(" · ");
      log("presence", "presence: " + parts.join(" · "));
    }, fail("presence"));
  });
  $("who-room").addEventListener("click", () => {
    const room = $("room").value.trim();
    client.roomPresence(room).then((p) => {
      const text = room + ": " + (p.users.join(", ") || "nobody");
      $("presence-result").textContent = text;
      log("presence", "in " + text);
    }, fail("room presence"));
  });
}
`;
