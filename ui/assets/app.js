// roster's UI script: fills each panel with one request carrying the token kept in this browser, swaps the HTML
// fragment in, and asks again with the index it got (a Consul blocking query), so pages follow the cluster without
// polling. KV changes go through the ordinary HTTP API, a save with a check-and-set on the index it read.
'use strict';
(function () {
  const root = document.body.dataset.root;
  const TOKEN = 'roster.token';
  const token = () => localStorage.getItem(TOKEN) || '';
  const headers = () => (token() ? { 'X-Consul-Token': token() } : {});
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const statusLine = document.getElementById('status');
  const say = (text, isError) => {
    statusLine.textContent = text;
    statusLine.classList.toggle('error', Boolean(isError));
  };
  const kvUrl = (key) => '/v1/kv/' + key.split('/').map(encodeURIComponent).join('/');

  const filter = document.getElementById('filter');
  const applyFilter = () => {
    if (!filter) return;
    const wanted = filter.value.trim().toLowerCase();
    document.querySelectorAll('table[data-filterable] tbody tr').forEach((row) => {
      row.hidden = wanted !== '' && !row.textContent.toLowerCase().includes(wanted);
    });
  };
  if (filter) filter.addEventListener('input', applyFilter);

  class Panel {
    constructor(element) {
      this.element = element;
      this.source = element.dataset.panel;
      this.generation = 0;
      this.pending = null;
      this.controller = null;
    }

    // (Re)starts the panel's loop from a fresh read; an older loop ends at its next step.
    start() {
      this.generation += 1;
      if (this.controller) this.controller.abort();
      this.run(this.generation);
    }

    async run(generation) {
      let index = 0;
      let failures = 0;
      while (generation === this.generation) {
        this.controller = new AbortController();
        let response;
        let html;
        try {
          const url = this.source + (index ? '?index=' + index : '');
          response = await fetch(url, { headers: headers(), cache: 'no-store', signal: this.controller.signal });
          html = await response.text();
        } catch (error) {
          if (generation !== this.generation) return;
          // The agent did not answer (restarting, unreachable): ask again after a growing pause.
          failures += 1;
          this.element.dataset.stale = 'true';
          await sleep(Math.min(30000, 250 * 2 ** Math.min(failures, 7)));
          continue;
        }
        if (generation !== this.generation) return;
        failures = 0;
        delete this.element.dataset.stale;
        this.show(html);
        const next = Number(response.headers.get('X-Consul-Index') || 0);
        // A denied or failed panel waits for a new token instead of asking again.
        if (!response.ok || !next) return;
        // An index that went backwards (a snapshot restore) starts over, as Consul's clients do.
        index = next < index ? 0 : next;
      }
    }

    // Swaps the fragment in, unless the user is editing a form inside the panel: then it waits for the save.
    show(html) {
      if (this.element.querySelector('form[data-dirty]')) {
        this.pending = html;
        return;
      }
      this.pending = null;
      this.element.innerHTML = html;
      this.element.setAttribute('aria-busy', 'false');
      this.element.dataset.loaded = String(Number(this.element.dataset.loaded || 0) + 1);
      applyFilter();
    }
  }

  const panels = Array.from(document.querySelectorAll('[data-panel]'), (element) => new Panel(element));
  const panelOf = (element) => panels.find((panel) => panel.element.contains(element));

  const tokenInput = document.getElementById('token');
  tokenInput.value = token();
  document.getElementById('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = tokenInput.value.trim();
    if (value) localStorage.setItem(TOKEN, value);
    else localStorage.removeItem(TOKEN);
    say(value ? 'Using the token you entered.' : 'Using no token (anonymous).');
    panels.forEach((panel) => panel.start());
  });

  // Sends a write; on an error status says why and answers null.
  async function write(method, url, body) {
    let response;
    try {
      response = await fetch(url, { method, headers: headers(), body });
    } catch (error) {
      say('The agent did not answer: ' + error.message, true);
      return null;
    }
    if (!response.ok) {
      say(method + ' failed (' + response.status + '): ' + (await response.text()).trim(), true);
      return null;
    }
    return (await response.text()).trim();
  }

  document.addEventListener('input', (event) => {
    const form = event.target.closest('form[data-action]');
    if (form) form.dataset.dirty = 'true';
  });

  document.addEventListener('submit', async (event) => {
    const form = event.target;
    const action = form.dataset.action;
    if (action !== 'kv-save' && action !== 'kv-create') return;
    event.preventDefault();
    const panel = panelOf(form);
    const value = form.elements.value.value;
    if (action === 'kv-save') {
      const key = form.dataset.key;
      const answer = await write('PUT', kvUrl(key) + '?cas=' + form.dataset.cas, value);
      if (answer === null) return;
      delete form.dataset.dirty;
      if (answer === 'true') {
        say('Saved ' + key + '.');
      } else {
        say('Not saved: ' + key + ' was changed by someone else after you opened it. '
          + 'Its current value is shown below; edit it again to replace it.', true);
      }
      panel.start();
      return;
    }
    const name = form.elements.name.value;
    const key = form.dataset.prefix + name;
    const answer = await write('PUT', kvUrl(key) + '?cas=0', value);
    if (answer === null) return;
    if (answer === 'true') {
      delete form.dataset.dirty;
      say('Created ' + key + '.');
      panel.start();
    } else {
      say(key + ' already exists: open it to change it.', true);
    }
  });

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-action="kv-delete"]');
    if (!button) return;
    const key = button.dataset.key;
    const recurse = button.hasAttribute('data-recurse');
    // The first press arms the button; the second deletes.
    if (!button.hasAttribute('data-armed')) {
      button.setAttribute('data-armed', '');
      button.textContent = recurse ? 'Confirm: delete ' + key + ' and everything in it' : 'Confirm: delete ' + key;
      button.setAttribute('aria-label', button.textContent);
      return;
    }
    const answer = await write('DELETE', kvUrl(key) + (recurse ? '?recurse' : ''));
    if (answer === null) return;
    say('Deleted ' + key + (recurse ? ' and everything in it.' : '.'));
    panelOf(button).start();
  });

  panels.forEach((panel) => panel.start());
}());
