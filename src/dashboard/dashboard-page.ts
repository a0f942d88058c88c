// The dashboard's HTML shell. It carries no data: the script asks for the admin token and
// reads everything from the admin API with it.
import { ID_HTML_PATTERN } from "../protocol/grammar.ts";
import { pageHead } from "./style.ts";

export const DASHBOARD_HTML = `${pageHead("wsgate dashboard", `
<meta name="referrer" content="no-referrer">`)}
<body>
<header>
  <h1>wsgate</h1>
  <span id="served" class="muted"></span>
  <span id="redis" class="badge none hidden" title="Redis state seen by the gateway serving this page"></span>
  <span class="spacer"></span>
  <span id="updated" class="muted"></span>
  <button id="signout" class="secondary hidden" type="button">Sign out</button>
</header>

<main>
  <section id="login-view" class="login hidden">
    <h2>Admin token</h2>
    <p class="muted">The dashboard reads the admin API with <code>WSGATE_ADMIN_TOKEN</code>. It stays in this tab only (sessionStorage).</p>
    <form id="login" class="row" autocomplete="off">
      <input id="token" type="password" placeholder="admin token" aria-label="admin token" required>
      <button type="submit">Open</button>
    </form>
    <div id="login-error" class="error" role="alert"></div>
  </section>

  <div id="app-view" class="hidden">
    <div id="banner" class="banner hidden" role="alert"></div>
    <div class="cards spaced">
      <div class="card"><div class="v" id="sum-gateways">–</div><div class="k">gateways</div></div>
      <div class="card"><div class="v" id="sum-regions">–</div><div class="k">regions</div></div>
      <div class="card"><div class="v" id="sum-connections">–</div><div class="k">connections</div></div>
      <div class="card"><div class="v" id="sum-users">–</div><div class="k">users (sum over gateways)</div></div>
      <div class="card"><div class="v" id="sum-rate">–</div><div class="k">messages routed / s</div></div>
      <div class="card"><div class="v" id="sum-errors">–</div><div class="k">errors</div></div>
    </div>

    <section>
      <h2>Gateways by region</h2>
      <div id="regions"><p class="muted">loading…</p></div>
    </section>

    <div class="grid2">
      <section>
        <h2>Messages routed / s</h2>
        <svg id="spark" class="spark" viewBox="0 0 120 40" preserveAspectRatio="none" aria-label="messages per second, last minutes"><polyline points=""></polyline></svg>
        <div id="spark-label" class="muted"></div>
      </section>
      <section>
        <h2>Errors by code</h2>
        <div id="errors"><p class="muted">none</p></div>
      </section>
    </div>

    <section>
      <h2>User presence</h2>
      <form id="presence-form" class="row" autocomplete="off">
        <input id="presence-user" placeholder="user id" aria-label="user id" required pattern="${ID_HTML_PATTERN}">
        <button type="submit">Look up</button>
        <button id="presence-clear" class="secondary hidden" type="button">Clear</button>
      </form>
      <div id="presence"></div>
    </section>
  </div>
</main>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;
