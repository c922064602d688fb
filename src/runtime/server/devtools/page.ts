/**
 * The DevTools tab's page: plain HTML and script, no build step. It reads the `events` stream
 * next to it and posts to `post`. User text is only ever set with `textContent`.
 */
export const devtoolsPage = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>nuxt-chat DevTools</title>
<style>
  /* Nuxt DevTools sets html.dark or html.light on the tab to match its own theme. */
  html.dark { color-scheme: dark; }
  html.light { color-scheme: light; }
  :root { color-scheme: light dark; --line: #8884; --muted: #888; --ok: #16a34a; --bad: #dc2626; --accent: #00dc82; font: 13px/1.45 ui-sans-serif, system-ui, sans-serif; }
  /* The page fills the DevTools panel, whatever its size: the feed takes the height left. */
  html, body { height: 100%; }
  body { margin: 0; padding: 14px 18px; box-sizing: border-box; display: flex; flex-direction: column; min-height: 420px; }
  h1 { font-size: 15px; margin: 0 0 12px; display: flex; gap: 8px; align-items: center; }
  h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 16px 0 6px; }
  .counters { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 8px; }
  .counter { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .counter b { display: block; font-size: 18px; font-variant-numeric: tabular-nums; }
  .counter span { color: var(--muted); font-size: 11px; }
  .cols { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); gap: 18px; flex: 1; min-height: 0; }
  .cols > div { overflow: auto; }
  .cols > .live { display: flex; flex-direction: column; overflow: hidden; }
  table { width: 100%; border-collapse: collapse; }
  td, th { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 500; font-size: 11px; }
  tr.room { cursor: pointer; }
  tr.room.selected { background: #00dc8222; }
  .dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; background: var(--bad); }
  .dot.up { background: var(--ok); }
  .status td:first-child { width: 60px; color: var(--muted); }
  .guest { color: var(--muted); }
  .feed { border: 1px solid var(--line); border-radius: 6px; flex: 1; min-height: 120px; overflow: auto; font: 12px/1.5 ui-monospace, monospace; padding: 6px 8px; }
  .feed div { white-space: pre-wrap; word-break: break-word; }
  .feed .kind { display: inline-block; min-width: 58px; color: var(--muted); }
  .feed .room { color: var(--accent); margin-right: 6px; }
  .feed .refused .kind { color: var(--bad); }
  form { display: flex; gap: 6px; margin-top: 8px; }
  input { flex: 1; padding: 5px 8px; border: 1px solid var(--line); border-radius: 5px; background: transparent; color: inherit; }
  input[name=room] { flex: 0 0 140px; }
  button { padding: 5px 12px; border-radius: 5px; border: 0; background: var(--accent); color: #000; cursor: pointer; }
  .note { color: var(--muted); font-size: 11px; margin-top: 4px; min-height: 1.4em; }
  .muted { color: var(--muted); }
</style>
</head>
<body>
<h1><span class="dot up" id="live"></span>nuxt-chat <span class="muted" style="font-weight:400">this instance, dev only</span></h1>
<div class="counters" data-testid="counters">
  <div class="counter"><b id="c-connections">0</b><span>connections</span></div>
  <div class="counter"><b id="c-rooms">0</b><span>rooms</span></div>
  <div class="counter"><b id="c-rate">0</b><span>messages/s</span></div>
  <div class="counter"><b id="c-bytes">0</b><span>stored bytes/s</span></div>
  <div class="counter"><b id="c-slow">0</b><span>slow-reader drops</span></div>
  <div class="counter"><b id="c-limited">0</b><span>rate-limit refusals</span></div>
</div>
<div class="cols">
  <div>
    <h2>Rooms</h2>
    <table><thead><tr><th>room</th><th>conn.</th><th>online</th></tr></thead><tbody id="rooms" data-testid="rooms"></tbody></table>
    <h2>Store and bus</h2>
    <table class="status"><tbody>
      <tr><td>store</td><td><span class="dot" id="store-dot"></span><span id="store"></span><div class="note" id="store-error"></div></td></tr>
      <tr><td>bus</td><td><span class="dot" id="bus-dot"></span><span id="bus"></span><div class="note" id="bus-error"></div></td></tr>
    </tbody></table>
  </div>
  <div class="live">
    <h2>Live feed <span class="muted" id="filter" style="text-transform:none"></span></h2>
    <div class="feed" id="feed" data-testid="feed"></div>
    <form id="post">
      <input name="room" placeholder="room" required>
      <input name="message" placeholder="Post into the room as the server" required>
      <button type="submit">Post</button>
    </form>
    <div class="note" id="post-note"></div>
  </div>
</div>
<script>
(() => {
  const base = location.pathname.replace(/\\/$/, '')
  const $ = id => document.getElementById(id)
  const el = (tag, text, className) => {
    const node = document.createElement(tag)
    if (text !== undefined) node.textContent = text
    if (className) node.className = className
    return node
  }
  let selected = ''
  let last
  const form = $('post')

  function renderRooms(rooms) {
    const body = $('rooms')
    body.replaceChildren(...rooms.map((room) => {
      const row = el('tr', undefined, 'room' + (room.name === selected ? ' selected' : ''))
      row.dataset.room = room.name
      row.append(el('td', room.name), el('td', String(room.connections)))
      const online = el('td')
      room.online.forEach((user, index) => {
        if (index) online.append(', ')
        online.append(el('span', user.name + (user.guest ? ' (guest)' : '') + (user.connections > 1 ? ' ×' + user.connections : ''), user.guest ? 'guest' : ''))
      })
      for (const user of room.elsewhere) {
        if (online.childNodes.length) online.append(', ')
        online.append(el('span', user.name + (user.guest ? ' (guest, other instance)' : ' (other instance)'), 'muted'))
      }
      row.append(online)
      row.onclick = () => {
        selected = selected === room.name ? '' : room.name
        form.room.value = room.name
        $('filter').textContent = selected ? '(room ' + selected + ')' : ''
        for (const line of $('feed').children) line.hidden = Boolean(selected) && line.dataset.room !== selected
        renderRooms(rooms)
      }
      return row
    }))
    if (!rooms.length) {
      const empty = el('td', 'No connections on this instance', 'muted')
      empty.colSpan = 3
      body.append(el('tr'))
      body.lastElementChild.append(empty)
    }
  }

  const lastError = part => part.lastError ? 'last error ' + new Date(part.lastErrorAt).toLocaleTimeString() + ': ' + part.lastError : ''

  function renderState(state) {
    const now = Date.now()
    const seconds = last ? (now - last.at) / 1000 : 0
    const rate = (key) => seconds ? Math.max(0, (state.counters[key] - last.state.counters[key]) / seconds) : 0
    $('c-connections').textContent = state.counters.connections
    $('c-rooms').textContent = state.rooms.length
    $('c-rate').textContent = rate('messagesStored').toFixed(1)
    $('c-bytes').textContent = Math.round(rate('bytesStored'))
    $('c-slow').textContent = state.counters.slowReaderDrops
    $('c-limited').textContent = state.counters.rateLimited
    renderRooms(state.rooms)
    $('store-dot').className = 'dot' + (state.store.up ? ' up' : '')
    $('store').textContent = state.store.backend + ': ' + state.store.where + ' · ' + state.store.appends + ' appends, mean ' + state.store.meanAppendMs.toFixed(2) + ' ms'
    $('store-error').textContent = lastError(state.store)
    $('bus-dot').className = 'dot' + (state.bus.up ? ' up' : '')
    $('bus').textContent = state.bus.kind + ': ' + state.bus.where + (state.bus.up ? ' (up)' : ' (down)')
    $('bus-error').textContent = lastError(state.bus)
    last = { at: now, state }
  }

  function addFrame(frame) {
    const feed = $('feed')
    const line = el('div', undefined, frame.kind)
    line.dataset.room = frame.room
    line.hidden = Boolean(selected) && frame.room !== selected
    let text = frame.text
    if (frame.kind === 'message') {
      try {
        const message = JSON.parse(frame.text)
        text = '#' + message.id + ' ' + message.user + ': ' + message.message
      }
      catch {}
    }
    line.append(el('span', new Date(frame.ts).toLocaleTimeString() + ' ', 'muted'), el('span', frame.kind, 'kind'), el('span', frame.room, 'room'), el('span', text))
    const atBottom = feed.scrollTop + feed.clientHeight >= feed.scrollHeight - 4
    feed.append(line)
    while (feed.children.length > 500) feed.firstElementChild.remove()
    if (atBottom) feed.scrollTop = feed.scrollHeight
  }

  const events = new EventSource(base + '/events')
  events.addEventListener('state', event => renderState(JSON.parse(event.data)))
  events.addEventListener('frame', event => addFrame(JSON.parse(event.data)))
  events.onopen = () => $('live').className = 'dot up'
  events.onerror = () => $('live').className = 'dot'

  form.onsubmit = async (event) => {
    event.preventDefault()
    const response = await fetch(base + '/post', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: form.room.value, message: form.message.value }) })
    const answer = await response.json().catch(() => ({}))
    $('post-note').textContent = response.ok ? 'Stored as #' + answer.id : 'Refused: ' + (answer.message || response.status)
    if (response.ok) form.message.value = ''
  }
})()
</script>
</body>
</html>
`
