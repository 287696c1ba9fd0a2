/*!
 * wskit.js: a small browser client for wskit servers. No dependencies, ES2017, loads as a plain
 * <script src="/wskit.js"> and defines the global `WskitClient` (also exported through
 * `module.exports` when a CommonJS loader is present). For pages written against the
 * sgcWebSockets browser library it also defines `sgcWebSocket` and the ID-header helpers
 * `sgcWSStreamRead/Write` and `sgcWSBytesRead/Write` (see "Compatibility" below).
 *
 *   const c = new WskitClient('/echo', {       // ws:, wss:, http(s): or a path on this host
 *     protocols: ['chat.v1'],                  // subprotocols offered (default: none)
 *     reconnect: true,                         // reconnect after unexpected closes (default true)
 *     minDelay: 500, maxDelay: 30000,          // backoff bounds in ms (defaults 500 / 30000)
 *     maxAttempts: Infinity,                   // reconnect attempts before giving up (default Infinity)
 *     transports: ['websocket', 'sse'],        // in order of preference (default both)
 *     sseUrl: '/sse',                          // EventSource URL for the SSE transport (default none:
 *                                              //   no SSE fallback unless this is set; true: the
 *                                              //   WebSocket URL itself, as http: or https:)
 *     sseEvents: ['message'],                  // SSE event names delivered as messages (default
 *                                              //   ['message'], i.e. events without an `event:` line)
 *     ssePost: false,                          // over SSE, send() POSTs to sseUrl (default false:
 *                                              //   SSE is receive-only and send() returns false)
 *     fallbackAfter: 3,                        // WebSocket opens failing in a row before SSE (default 3)
 *     openTimeout: 10000,                      // ms a WebSocket may take to open (default 10000)
 *     stableAfter: 5000,                       // ms open before the backoff resets (default 5000)
 *     binaryType: 'arraybuffer',               // or 'blob' (default 'arraybuffer')
 *   });
 *   c.on('open', ({transport, protocol, extensions}) => {});
 *   c.on('message', (data, {transport, event, lastEventId}) => {}); // string, ArrayBuffer or Blob
 *   c.on('json', (value, info) => {});          // text messages that parse as JSON, parsed
 *   c.on('close', ({code, reason, wasClean, willReconnect}) => {});
 *   c.on('error', (err) => {});
 *   c.on('reconnecting', ({attempt, delay, transport}) => {});
 *   c.on('fallback', ({from, to}) => {});      // switched from WebSocket to SSE
 *   c.send('text'); c.send(arrayBuffer); c.send(blob); c.sendJSON({hello: 1});
 *   c.state();                                  // 'connecting' | 'open' | 'closing' | 'closed'
 *   c.transport();                              // 'websocket' | 'sse' | null
 *   c.close(1000, 'bye');                       // closes and disables reconnect
 *
 * Behaviour:
 * - The client connects as soon as it is constructed. `on()` returns a function that removes the
 *   handler; `off(event, fn)` does the same. A handler that throws is reported on the console and
 *   does not stop the others.
 * - `send()` returns true when the data was handed to the transport and false when the client is not
 *   open (nothing is queued). Over SSE it returns false unless `ssePost` is set; POST failures are
 *   reported on 'error'.
 * - After an unexpected close (anything but `close()`), the client reconnects after a jittered
 *   exponential delay: the n-th attempt waits between half and all of min(maxDelay, minDelay * 2^n).
 *   The count resets once a connection has stayed open for `stableAfter` ms, so a server that
 *   accepts and drops at once is not hammered. While a reconnect is pending, `state()` is
 *   'connecting'. After `maxAttempts` attempts in a row without a stable connection the client
 *   stays closed; its last 'close' then has willReconnect false.
 * - WebSocket falls back to SSE when `sseUrl` is set, 'sse' is among the transports and either the
 *   browser has no WebSocket or `fallbackAfter` connections in a row failed before opening. An
 *   EventSource retries by itself (honouring the server's `retry:`); the client reports those retries
 *   as 'reconnecting' and reconnects itself only when the browser gives up (readyState CLOSED).
 * - Relative URLs resolve against the page; http: becomes ws: and https: becomes wss:.
 */
(function (root) {
  'use strict';

  var DEFAULTS = {
    protocols: [],
    reconnect: true,
    minDelay: 500,
    maxDelay: 30000,
    maxAttempts: Infinity,
    transports: ['websocket', 'sse'],
    sseUrl: null,
    sseEvents: ['message'],
    ssePost: false,
    fallbackAfter: 3,
    openTimeout: 10000,
    stableAfter: 5000,
    binaryType: 'arraybuffer',
  };

  var EVENTS = ['open', 'message', 'json', 'close', 'error', 'reconnecting', 'fallback'];

  function base() {
    return typeof location !== 'undefined' ? location.href : 'http://localhost/';
  }

  function toWsUrl(url) {
    var u = new URL(url, base());
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    return u.href;
  }

  function toHttpUrl(url) {
    var u = new URL(url, base());
    if (u.protocol === 'ws:') u.protocol = 'http:';
    else if (u.protocol === 'wss:') u.protocol = 'https:';
    return u.href;
  }

  class WskitClient {
    constructor(url, options) {
      var o = Object.assign({}, DEFAULTS, options || {});
      if (typeof o.protocols === 'string') o.protocols = [o.protocols];
      this._opts = o;
      this._url = url == null ? null : toWsUrl(url);
      this._sseUrl = o.sseUrl == null || o.sseUrl === false ? null
        : o.sseUrl === true ? (this._url == null ? null : toHttpUrl(this._url)) : toHttpUrl(o.sseUrl);
      this._handlers = {};
      EVENTS.forEach((e) => { this._handlers[e] = []; });
      this._state = 'connecting';
      this._transport = null;
      this._ws = null;
      this._es = null;
      this._timer = null;
      this._openTimer = null;
      this._stableTimer = null;
      this._attempt = 0;          // reconnect attempts since the last stable connection
      this._failedOpens = 0;      // WebSocket connections in a row that never opened
      this._stopped = false;      // close() was called
      this._useSse = !this._canWebSocket() && this._canSse();
      // Connect after the constructor returns, so handlers registered right away see 'open'.
      this._timer = setTimeout(() => { this._timer = null; this._connect(); }, 0);
    }

    /** Adds a handler; returns a function that removes it. */
    on(event, fn) {
      if (!this._handlers[event]) throw new TypeError('WskitClient: unknown event ' + event);
      if (typeof fn !== 'function') throw new TypeError('WskitClient: handler is not a function');
      this._handlers[event].push(fn);
      return () => this.off(event, fn);
    }

    /** Removes a handler added with on(). */
    off(event, fn) {
      var list = this._handlers[event];
      if (!list) return;
      var i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    }

    /** 'connecting' | 'open' | 'closing' | 'closed'. */
    state() {
      return this._state;
    }

    /** 'websocket' | 'sse' | null (not connected yet). */
    transport() {
      return this._transport;
    }

    /** The negotiated WebSocket subprotocol ('' when none or over SSE). */
    get protocol() {
      return this._ws ? this._ws.protocol : '';
    }

    /** The negotiated WebSocket extensions, e.g. 'permessage-deflate' ('' when none or over SSE). */
    get extensions() {
      return this._ws ? this._ws.extensions : '';
    }

    /** The WebSocket URL (after resolving) or, over SSE, the EventSource URL. */
    get url() {
      return this._transport === 'sse' ? this._sseUrl : this._url;
    }

    /** Sends a string, ArrayBuffer, typed array or Blob. Returns whether it was handed over. */
    send(data) {
      if (this._state !== 'open') return false;
      if (this._transport === 'websocket' && this._ws) {
        this._ws.send(data);
        return true;
      }
      if (this._transport === 'sse' && this._opts.ssePost && this._sseUrl) {
        var headers = typeof data === 'string' ? {'Content-Type': 'text/plain;charset=utf-8'} : {};
        fetch(this._sseUrl, {method: 'POST', body: data, headers: headers}).then((r) => {
          if (!r.ok) this._emit('error', new Error('POST ' + this._sseUrl + ': HTTP ' + r.status));
        }, (err) => this._emit('error', err));
        return true;
      }
      return false;
    }

    /** Sends JSON.stringify(value) as a text message. */
    sendJSON(value) {
      return this.send(JSON.stringify(value));
    }

    /** Closes the connection and disables reconnecting. Codes: 1000 or 3000-4999. */
    close(code, reason) {
      this._stopped = true;
      this._clearTimers();
      if (this._ws) {
        var ws = this._ws;
        if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
          this._state = 'closing';
          if (code === undefined) ws.close();
          else ws.close(code, reason === undefined ? '' : reason);
          return; // 'close' is emitted from the socket's close event
        }
      }
      if (this._es) {
        this._es.close();
        this._es = null;
      }
      if (this._state !== 'closed') {
        this._state = 'closed';
        this._emit('close', {code: code || 1000, reason: reason || '', wasClean: true, willReconnect: false});
      }
    }

    // ---- internals ----

    _canWebSocket() {
      return this._url != null && this._opts.transports.indexOf('websocket') >= 0 && typeof WebSocket !== 'undefined';
    }

    _canSse() {
      return this._sseUrl != null && this._opts.transports.indexOf('sse') >= 0 && typeof EventSource !== 'undefined';
    }

    _emit(event, a, b) {
      var list = this._handlers[event].slice();
      for (var i = 0; i < list.length; i++) {
        try {
          list[i].call(this, a, b);
        } catch (err) {
          if (typeof console !== 'undefined') console.error('WskitClient ' + event + ' handler:', err);
        }
      }
    }

    _clearTimers() {
      if (this._timer) { clearTimeout(this._timer); this._timer = null; }
      if (this._openTimer) { clearTimeout(this._openTimer); this._openTimer = null; }
      if (this._stableTimer) { clearTimeout(this._stableTimer); this._stableTimer = null; }
    }

    // Called on open: the backoff resets once the connection has lasted `stableAfter` ms.
    _opened() {
      if (this._stableTimer) clearTimeout(this._stableTimer);
      this._stableTimer = setTimeout(() => { this._stableTimer = null; this._attempt = 0; }, this._opts.stableAfter);
    }

    // Called when a connection ends: it was not stable if the timer is still pending.
    _ended() {
      if (this._stableTimer) { clearTimeout(this._stableTimer); this._stableTimer = null; }
    }

    _connect() {
      if (this._stopped) return;
      this._state = 'connecting';
      if (!this._useSse && this._canWebSocket()) this._connectWs();
      else if (this._canSse()) this._connectSse();
      else {
        this._state = 'closed';
        this._stopped = true;
        var why = 'WskitClient: no usable transport (transports ' + JSON.stringify(this._opts.transports) + ')';
        this._emit('error', new Error(why));
        this._emit('close', {code: 1006, reason: why, wasClean: false, willReconnect: false});
      }
    }

    _connectWs() {
      var ws;
      try {
        ws = this._opts.protocols.length ? new WebSocket(this._url, this._opts.protocols) : new WebSocket(this._url);
      } catch (err) {
        // A syntax error in the URL or protocols: retrying cannot help.
        this._stopped = true;
        this._state = 'closed';
        this._emit('error', err);
        this._emit('close', {code: 1006, reason: String(err && err.message || err), wasClean: false, willReconnect: false});
        return;
      }
      ws.binaryType = this._opts.binaryType;
      this._ws = ws;
      this._transport = 'websocket';
      var opened = false;
      if (this._opts.openTimeout > 0) {
        this._openTimer = setTimeout(() => {
          this._openTimer = null;
          if (this._ws === ws && ws.readyState === WebSocket.CONNECTING) {
            this._emit('error', new Error('WebSocket did not open within ' + this._opts.openTimeout + ' ms'));
            ws.close();
          }
        }, this._opts.openTimeout);
      }
      ws.onopen = () => {
        if (this._ws !== ws) return;
        if (this._openTimer) { clearTimeout(this._openTimer); this._openTimer = null; }
        opened = true;
        this._failedOpens = 0;
        this._opened();
        this._state = 'open';
        this._emit('open', {transport: 'websocket', protocol: ws.protocol, extensions: ws.extensions});
      };
      ws.onmessage = (ev) => {
        if (this._ws !== ws) return;
        this._deliver(ev.data, {transport: 'websocket', event: 'message', lastEventId: ''});
      };
      ws.onerror = () => {
        if (this._ws !== ws) return;
        // Browsers give no detail; the close event that follows carries the code.
        this._emit('error', new Error(opened ? 'WebSocket error' : 'WebSocket failed to open: ' + this._url));
      };
      ws.onclose = (ev) => {
        if (this._ws !== ws) return;
        if (this._openTimer) { clearTimeout(this._openTimer); this._openTimer = null; }
        this._ws = null;
        this._ended();
        if (!opened) this._failedOpens++;
        var fallback = !this._stopped && !opened && this._failedOpens >= this._opts.fallbackAfter && this._canSse();
        if (fallback) {
          this._useSse = true;
          this._attempt = 0;
        }
        var will = this._willReconnect() || fallback;
        this._state = will ? 'connecting' : 'closed';
        this._emit('close', {code: ev.code, reason: ev.reason, wasClean: ev.wasClean, willReconnect: will});
        if (fallback) {
          this._emit('fallback', {from: 'websocket', to: 'sse'});
          this._connect();
        } else if (will) {
          this._schedule();
        }
      };
    }

    _connectSse() {
      var es = new EventSource(this._sseUrl);
      this._es = es;
      this._ws = null;
      this._transport = 'sse';
      var onEvent = (ev) => {
        if (this._es !== es) return;
        this._deliver(ev.data, {transport: 'sse', event: ev.type, lastEventId: ev.lastEventId || ''});
      };
      this._opts.sseEvents.forEach((name) => es.addEventListener(name, onEvent));
      es.onopen = () => {
        if (this._es !== es) return;
        this._opened();
        this._state = 'open';
        this._emit('open', {transport: 'sse', protocol: '', extensions: ''});
      };
      es.onerror = () => {
        if (this._es !== es) return;
        var wasOpen = this._state === 'open';
        this._ended();
        if (es.readyState === EventSource.CONNECTING) {
          // The browser reconnects by itself after the server's retry: delay.
          this._state = 'connecting';
          if (wasOpen) this._emit('close', {code: 1006, reason: 'event stream interrupted', wasClean: false, willReconnect: true});
          this._emit('reconnecting', {attempt: 1, delay: null, transport: 'sse'});
          return;
        }
        // CLOSED: the browser gave up (HTTP error, wrong content type, ...).
        es.close();
        this._es = null;
        this._emit('error', new Error('event stream failed: ' + this._sseUrl));
        var will = this._willReconnect();
        this._state = will ? 'connecting' : 'closed';
        this._emit('close', {code: 1006, reason: 'event stream closed', wasClean: false, willReconnect: will});
        if (will) this._schedule();
      };
    }

    _deliver(data, info) {
      this._emit('message', data, info);
      if (typeof data === 'string' && this._handlers.json.length) {
        var value;
        try {
          value = JSON.parse(data);
        } catch (_) {
          return;
        }
        this._emit('json', value, info);
      }
    }

    _willReconnect() {
      return !this._stopped && this._opts.reconnect && this._attempt < this._opts.maxAttempts;
    }

    _schedule() {
      var o = this._opts;
      var ceiling = Math.min(o.maxDelay, o.minDelay * Math.pow(2, this._attempt));
      var delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
      this._attempt++;
      this._emit('reconnecting', {attempt: this._attempt, delay: delay, transport: this._useSse ? 'sse' : 'websocket'});
      this._timer = setTimeout(() => { this._timer = null; this._connect(); }, delay);
    }
  }


  // ---------------------------------------------------------------------------------------------
  // Compatibility with pages written against the sgcWebSockets browser library (sgcWebSockets.js).
  //
  //   var socket = new sgcWebSocket('ws://host:port', 'protocol', ['websocket', 'sse']);
  //   var socket = new sgcWebSocket({host: 'ws://host:port', user: 'admin', password: '1234'});
  //   socket.on('open' | 'close' | 'error' | 'message' | 'stream', function (event) { ... });
  //     'message': event.message is the text;  'stream': event.stream is the binary data (a Blob);
  //     'error': event.message says what failed; 'close': event.code, event.reason
  //   socket.send(textOrBinary); socket.close(); socket.state();  // 'connecting' | 'open' | ...
  //   sgcWSStreamRead(blob, function (header, stream) { ... });     // header: the ID, stream: a Blob
  //   var blob = sgcWSStreamWrite('00001', blobOrBuffer);           // ID of at most 10 bytes
  //   var bytes = sgcWSBytesWrite('00001', uint8Array);              // Uint8Array
  //   var r = sgcWSBytesRead(uint8Array);                            // {header, data} or null
  //
  // The credentials form connects to HOST/sgc/auth/url/USER/PASSWORD, the seed's URL
  // authentication, which a wskit server accepts only when URL authentication is turned on
  // (credentials in a URL end up in logs; prefer a token). The transport is an array or one name;
  // with 'sse' the same URL is opened as an EventSource (http: for ws:), and the default tries the
  // WebSocket first and falls back to SSE as soon as it fails to open (the close of that attempt
  // is not reported; 'open' then says transport 'sse'). Binary messages are delivered as Blobs, as the seed does.
  // The ID header: 10 bytes of UTF-8 padded with NUL, then the payload (ws_frame::id_header in Rust).
  var ID_HEADER_LEN = 10;
  var encoder = typeof TextEncoder !== 'undefined' ? new TextEncoder() : null;
  var decoder = typeof TextDecoder !== 'undefined' ? new TextDecoder('utf-8', {fatal: true}) : null;

  function idField(id) {
    var bytes = encoder.encode(String(id));
    if (bytes.length > ID_HEADER_LEN || bytes.indexOf(0) !== -1) {
      throw new RangeError('sgcWebSocket: an ID is at most ' + ID_HEADER_LEN + ' bytes and has no NUL: ' + id);
    }
    var field = new Uint8Array(ID_HEADER_LEN);
    field.set(bytes);
    return field;
  }

  function sgcWSBytesWrite(id, bytes) {
    var data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    var out = new Uint8Array(ID_HEADER_LEN + data.length);
    out.set(idField(id));
    out.set(data, ID_HEADER_LEN);
    return out;
  }

  function sgcWSBytesRead(bytes) {
    var data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    if (data.length < ID_HEADER_LEN) return null;
    var end = data.subarray(0, ID_HEADER_LEN).indexOf(0);
    if (end === -1) end = ID_HEADER_LEN;
    for (var i = end; i < ID_HEADER_LEN; i++) if (data[i] !== 0) return null;
    var header;
    try {
      header = decoder.decode(data.subarray(0, end));
    } catch (_) {
      return null;
    }
    return {header: header, data: data.subarray(ID_HEADER_LEN)};
  }

  function sgcWSStreamWrite(id, data) {
    return new Blob([idField(id), data]);
  }

  function sgcWSStreamRead(stream, fn) {
    var read = stream instanceof Blob ? stream.arrayBuffer() : Promise.resolve(stream);
    return read.then(function (buffer) {
      var r = sgcWSBytesRead(new Uint8Array(buffer));
      if (!r) throw new Error('sgcWSStreamRead: the message has no ID header');
      var payload = stream instanceof Blob ? stream.slice(ID_HEADER_LEN) : r.data;
      if (fn) fn(r.header, payload);
      return {header: r.header, stream: payload};
    });
  }

  function sgcUrl(url, user, password) {
    var u = new URL(url, base());
    var path = u.pathname.replace(/\/+$/, '');
    u.pathname = path + '/sgc/auth/url/' + encodeURIComponent(user) + '/' + encodeURIComponent(password);
    return u.href;
  }

  class sgcWebSocket {
    constructor(url, protocol, transport) {
      var target = url;
      if (url && typeof url === 'object') {
        target = url.user != null ? sgcUrl(url.host, url.user, url.password == null ? '' : url.password) : url.host;
      }
      var transports = transport == null || transport === '' ? ['websocket', 'sse']
        : Array.isArray(transport) ? transport : [transport];
      var wsUrl = toWsUrl(target);
      this._handlers = {open: [], close: [], error: [], message: [], stream: []};
      this._client = new WskitClient(wsUrl, {
        protocols: protocol ? [protocol] : [],
        transports: transports,
        sseUrl: transports.indexOf('sse') !== -1 ? true : null,
        fallbackAfter: 1,
        binaryType: 'blob',
        reconnect: false,
      });
      var c = this._client;
      c.on('open', (info) => this._emit('open', {protocol: info.protocol, transport: info.transport}));
      c.on('close', (info) => {
        // Without reconnects, only a fallback to SSE follows a close: not an end.
        if (!info.willReconnect) this._emit('close', {code: info.code, reason: info.reason, wasClean: info.wasClean});
      });
      c.on('error', (err) => this._emit('error', {message: err && err.message ? err.message : String(err)}));
      c.on('message', (data) => {
        if (typeof data === 'string') this._emit('message', {message: data});
        else this._emit('stream', {stream: data instanceof Blob ? data : new Blob([data])});
      });
    }

    on(event, fn) {
      if (!this._handlers[event]) throw new TypeError('sgcWebSocket: unknown event ' + event);
      this._handlers[event].push(fn);
      return this;
    }

    send(data) {
      return this._client.send(data);
    }

    close() {
      this._client.close(1000, '');
    }

    state() {
      return this._client.state();
    }

    _emit(event, arg) {
      this._handlers[event].slice().forEach(function (fn) {
        try {
          fn(arg);
        } catch (e) {
          if (typeof console !== 'undefined') console.error('sgcWebSocket: a ' + event + ' handler threw', e);
        }
      });
    }
  }

  WskitClient.sgcWebSocket = sgcWebSocket;
  WskitClient.sgcWSBytesWrite = sgcWSBytesWrite;
  WskitClient.sgcWSBytesRead = sgcWSBytesRead;
  WskitClient.sgcWSStreamWrite = sgcWSStreamWrite;
  WskitClient.sgcWSStreamRead = sgcWSStreamRead;
  root.sgcWebSocket = sgcWebSocket;
  root.sgcWSBytesWrite = sgcWSBytesWrite;
  root.sgcWSBytesRead = sgcWSBytesRead;
  root.sgcWSStreamWrite = sgcWSStreamWrite;
  root.sgcWSStreamRead = sgcWSStreamRead;

  WskitClient.VERSION = '0.1.0';
  root.WskitClient = WskitClient;
  if (typeof module === 'object' && module && module.exports) module.exports = WskitClient;
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this);
