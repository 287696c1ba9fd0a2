/*!
 * wskit-files.js: the wskit files protocol (subprotocol `wskit-files.v1`, docs/files-protocol.md)
 * in the browser. No dependencies, ES2017; loads as a plain <script src="/wskit-files.js"> and
 * defines the global `WskitFiles` (also `module.exports` under CommonJS).
 *
 *   const files = new WskitFiles('/files?channel=news', {   // ws:, wss:, http(s): or a path
 *     window: 16,                  // chunks in flight we grant when receiving (default 16)
 *     chunk: 65536,                // default chunk size when sending (default 64 KiB)
 *     interval: 2000,              // QoS 2 receiving: ask again for the outstanding chunks
 *                                  // after this many ms without one (default 2 s, as the
 *                                  // Rust side's Config::interval)
 *     timeout: 30000,              // a transfer with nothing from the peer for this many ms
 *                                  // ends with an error, code 9 (default 30 s, Config::timeout)
 *     authorize: (info) => true,   // accept an incoming file? true, or a string: refused with it
 *   });
 *   await files.ready;             // the WebSocket is open
 *   files.on('event', (e) => {});  // {kind, name, size, position, fileId, qos, error}: the nine
 *                                  // events beforeSent, sentFragment, sentAcknowledgment, sent,
 *                                  // sentError, receivedAuthorization, receivedFragment, received,
 *                                  // receivedError
 *   files.on('error', (e) => {});  // a failed transfer, either way: an Error with code, fileId,
 *                                  // fileName, direction ('send' or 'receive')
 *   files.on('file', (f) => {});   // a received file: {name, size, blob, sha256, channel, data};
 *                                  // blob is a File with the name
 *   const r = await files.sendFile(fileOrBlob, {name, qos: 0|1|2, chunk, channel, data, fileId});
 *                                  // resolves {fileId, size, resumedAt, sha256} once the receiver
 *                                  // confirmed the SHA-256; rejects with an Error (code, message)
 *   WskitFiles.download(f);        // saves a received file through an <a download>
 *   files.close();
 *
 * Sending streams the File slice by slice (memory stays at a few chunks). Receiving streams too:
 * chunks are gathered into Blob parts of about 1 MiB (the browser may keep Blobs out of the JS
 * heap), and the SHA-256 is computed incrementally (SubtleCrypto has no incremental digest), so no
 * buffer of the whole file exists. The SHA-256 is checked end to end. At QoS 2 the receiver pulls
 * with a credit window and asks again from its offset after `interval` without a chunk; at every
 * QoS a transfer ends after `timeout` without a message from the peer. Passing the same `fileId`
 * (32 hex digits) again resumes a file the receiver holds in part.
 */
(function (root) {
  'use strict';

  var SUBPROTOCOL = 'wskit-files.v1';
  var PART = 1 << 20; // received bytes gathered per Blob part
  var M = { offer: 1, accept: 2, refuse: 3, data: 4, ack: 5, request: 6, resume: 7, complete: 8, error: 9, cancel: 10 };

  // ---- SHA-256 (FIPS 180-4), incremental -------------------------------------------------------
  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  function Sha256() {
    this.h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.buf = new Uint8Array(64);
    this.used = 0;
    this.length = 0; // bytes
    this.w = new Uint32Array(64);
  }
  Sha256.prototype.block = function (b, off) {
    var w = this.w, h = this.h, i, t1, t2;
    for (i = 0; i < 16; i++) {
      w[i] = (b[off + 4 * i] << 24) | (b[off + 4 * i + 1] << 16) | (b[off + 4 * i + 2] << 8) | b[off + 4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
      var x = w[i - 15], y = w[i - 2];
      var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    var a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (i = 0; i < 64; i++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var ch = (e & f) ^ (~e & g);
      t1 = (hh + S1 + ch + K[i] + w[i]) | 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var maj = (a & bb) ^ (a & c) ^ (bb & c);
      t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  };
  Sha256.prototype.update = function (data) {
    var i = 0, n = data.length;
    this.length += n;
    if (this.used > 0) {
      var take = Math.min(64 - this.used, n);
      this.buf.set(data.subarray(0, take), this.used);
      this.used += take;
      i = take;
      if (this.used < 64) return;
      this.block(this.buf, 0);
      this.used = 0;
    }
    for (; i + 64 <= n; i += 64) this.block(data, i);
    if (i < n) {
      this.buf.set(data.subarray(i), 0);
      this.used = n - i;
    }
  };
  Sha256.prototype.digest = function () {
    var bits = this.length * 8;
    var pad = new Uint8Array(((this.used < 56) ? 56 : 120) - this.used + 8);
    pad[0] = 0x80;
    var hi = Math.floor(bits / 4294967296), lo = bits >>> 0;
    var p = pad.length - 8;
    pad[p] = hi >>> 24; pad[p + 1] = hi >>> 16; pad[p + 2] = hi >>> 8; pad[p + 3] = hi;
    pad[p + 4] = lo >>> 24; pad[p + 5] = lo >>> 16; pad[p + 6] = lo >>> 8; pad[p + 7] = lo;
    var len = this.length;
    this.update(pad);
    this.length = len;
    var out = new Uint8Array(32);
    for (var i = 0; i < 8; i++) {
      out[4 * i] = this.h[i] >>> 24; out[4 * i + 1] = this.h[i] >>> 16;
      out[4 * i + 2] = this.h[i] >>> 8; out[4 * i + 3] = this.h[i];
    }
    return out;
  };

  // ---- wire ------------------------------------------------------------------------------------
  var enc = new TextEncoder();
  var dec = new TextDecoder('utf-8', { fatal: true });

  function hex(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
    return s;
  }
  function unhex(s) {
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
    return out;
  }
  function Writer(method, id, extra) {
    this.b = new Uint8Array(18 + extra);
    this.v = new DataView(this.b.buffer);
    this.b[0] = 1; this.b[1] = method; this.b.set(id, 2);
    this.o = 18;
  }
  Writer.prototype.u8 = function (x) { this.b[this.o++] = x; return this; };
  Writer.prototype.u16 = function (x) { this.v.setUint16(this.o, x); this.o += 2; return this; };
  Writer.prototype.u32 = function (x) { this.v.setUint32(this.o, x); this.o += 4; return this; };
  Writer.prototype.u64 = function (x) {
    this.v.setUint32(this.o, Math.floor(x / 4294967296)); this.v.setUint32(this.o + 4, x >>> 0);
    this.o += 8; return this;
  };
  Writer.prototype.bytes = function (x) { this.b.set(x, this.o); this.o += x.length; return this; };
  Writer.prototype.str = function (x) { return this.u16(x.length).bytes(x); };

  function decode(buf) {
    var b = new Uint8Array(buf), v = new DataView(buf), o = 18;
    if (b.length < 18 || b[0] !== 1) throw new Error('malformed message');
    function need(n) { if (o + n > b.length) throw new Error('truncated message'); }
    function u16() { need(2); var x = v.getUint16(o); o += 2; return x; }
    function u32() { need(4); var x = v.getUint32(o); o += 4; return x; }
    function u64() { need(8); var x = v.getUint32(o) * 4294967296 + v.getUint32(o + 4); o += 8; return x; }
    function str() { var n = u16(); need(n); var s = dec.decode(b.subarray(o, o + n)); o += n; return s; }
    var m = { method: b[1], id: hex(b.subarray(2, 18)) };
    switch (m.method) {
      case M.offer: m.size = u64(); m.chunk = u32(); need(1); m.qos = b[o++]; m.name = str(); m.channel = str(); m.data = str(); break;
      case M.accept: u64(); m.offset = 0; m.window = u32(); break;
      case M.resume: m.offset = u64(); m.window = u32(); break;
      case M.refuse: case M.error: case M.cancel: m.code = u16(); m.message = str(); break;
      case M.data: m.packet = u64(); m.offset = u64(); m.chunk = b.subarray(o); break;
      case M.ack: m.packet = u64(); m.offset = u64(); break;
      case M.request: m.offset = u64(); m.count = u32(); need(1); m.retransmit = (b[o++] & 1) === 1; break;
      case M.complete: need(32); m.sha256 = hex(b.subarray(o, o + 32)); break;
      default: throw new Error('unknown method ' + m.method);
    }
    return m;
  }

  function badName(name) {
    return !name || name.length > 255 || name === '.' || name === '..' || /[\/\\:\u0000-\u001f\u007f]/.test(name)
      || name.trim() !== name || /\.$/.test(name);
  }

  function wsUrl(url) {
    var u = new URL(url, root.location ? root.location.href : undefined);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    if (u.protocol === 'https:') u.protocol = 'wss:';
    return u.href;
  }

  // ---- the client ------------------------------------------------------------------------------
  function WskitFiles(url, options) {
    var self = this;
    this.opts = Object.assign({ window: 16, chunk: 65536, interval: 2000, timeout: 30000, authorize: null }, options || {});
    this.handlers = { event: [], file: [], close: [], error: [] };
    this.outgoing = {}; // id -> {inbox: [], wake: fn}
    this.incoming = {}; // id -> receiving state
    this.ws = new WebSocket(wsUrl(url), [SUBPROTOCOL]);
    this.ws.binaryType = 'arraybuffer';
    this.ready = new Promise(function (resolve, reject) {
      self.ws.onopen = function () { resolve(self); };
      self.ws.onerror = function () { reject(new Error('WebSocket failed')); };
    });
    this.ws.onmessage = function (ev) {
      if (typeof ev.data === 'string') return;
      var m;
      try { m = decode(ev.data); } catch (e) { return; }
      var out = self.outgoing[m.id];
      if (out && m.method !== M.offer && m.method !== M.data) {
        out.inbox.push(m);
        if (out.wake) { var w = out.wake; out.wake = null; w(); }
        return;
      }
      self._receive(m);
    };
    this.ws.onclose = function (ev) {
      Object.keys(self.outgoing).forEach(function (id) {
        var o = self.outgoing[id];
        o.closed = true;
        if (o.wake) { var w = o.wake; o.wake = null; w(); }
      });
      Object.keys(self.incoming).forEach(function (id) {
        self._endIncoming(self.incoming[id], 0, 'connection closed', false);
      });
      self._emit('close', { code: ev.code, reason: ev.reason });
    };
  }

  WskitFiles.SUBPROTOCOL = SUBPROTOCOL;
  WskitFiles.Sha256 = Sha256;

  WskitFiles.prototype.on = function (event, fn) {
    var list = this.handlers[event];
    list.push(fn);
    return function () { var i = list.indexOf(fn); if (i >= 0) list.splice(i, 1); };
  };
  WskitFiles.prototype._emit = function (event, value) {
    this.handlers[event].forEach(function (fn) {
      try { fn(value); } catch (e) { if (root.console) root.console.error(e); }
    });
  };
  WskitFiles.prototype._event = function (kind, info, position, extra) {
    this._emit('event', Object.assign({ kind: kind, name: info.name, size: info.size, qos: info.qos, fileId: info.id, position: position }, extra || {}));
    if (kind === 'sentError' || kind === 'receivedError') {
      var e = new Error(extra.error);
      e.code = extra.code; e.fileId = info.id; e.fileName = info.name;
      e.direction = kind === 'sentError' ? 'send' : 'receive';
      this._emit('error', e);
    }
  };
  WskitFiles.prototype._send = function (w) { this.ws.send(w.b); };
  WskitFiles.prototype.close = function () { this.ws.close(1000, ''); };

  // Sending.
  WskitFiles.prototype.sendFile = async function (blob, options) {
    var self = this, o = Object.assign({ qos: 0, chunk: this.opts.chunk, channel: '', data: '', name: blob.name }, options || {});
    if (badName(o.name)) throw new Error('invalid file name ' + JSON.stringify(o.name));
    var id = o.fileId ? unhex(o.fileId) : root.crypto.getRandomValues(new Uint8Array(16));
    var idHex = hex(id), size = blob.size, chunk = o.chunk;
    var info = { id: idHex, name: o.name, size: size, qos: o.qos };
    var state = { inbox: [], wake: null, closed: false };
    var answered = false, limitMs = this.opts.timeout;
    this.outgoing[idHex] = state;
    // The next message from the receiver. Waiting for the answer to the offer (any QoS) or for
    // an ack / request / complete (QoS 1 and 2) ends after `timeout` with error code 9.
    function next() {
      if (state.inbox.length) return Promise.resolve(state.inbox.shift());
      if (state.closed) return Promise.reject(new Error('connection closed'));
      var timer = null;
      return new Promise(function (resolve) {
        state.wake = resolve;
        if (!answered || o.qos !== 0) {
          timer = setTimeout(function () { state.wake = null; resolve(null); }, limitMs);
        }
      }).then(function (timedOut) {
        clearTimeout(timer);
        if (timedOut === null) {
          var why = 'no answer from the receiver for ' + limitMs + ' ms', msg = enc.encode(why);
          self._send(new Writer(M.error, id, 2 + 2 + msg.length).u16(9).str(msg));
          fail({ message: why, code: 9 });
        }
        return next();
      });
    }
    function fail(m) {
      var e = new Error(m.message || 'failed'); e.code = m.code;
      self._event('sentError', info, 0, { error: e.message, code: m.code });
      throw e;
    }
    try {
      self._event('beforeSent', info, 0);
      var name = enc.encode(o.name), channel = enc.encode(o.channel), data = enc.encode(o.data);
      this._send(new Writer(M.offer, id, 8 + 4 + 1 + 6 + name.length + channel.length + data.length)
        .u64(size).u32(chunk).u8(o.qos).str(name).str(channel).str(data));
      var m = await next();
      answered = true;
      if (m.method === M.refuse || m.method === M.error || m.method === M.cancel) fail(m);
      if (m.method !== M.accept && m.method !== M.resume) fail({ message: 'unexpected answer', code: 16 });
      var pos = m.offset, acked = m.offset, limit = m.offset, window = m.window, resumedAt = m.offset;
      var hash = new Sha256(), hashed = 0, packet = 1, digest = null;
      while (hashed < pos) {
        var pre = new Uint8Array(await blob.slice(hashed, Math.min(pos, hashed + (1 << 20))).arrayBuffer());
        hash.update(pre); hashed += pre.length;
      }
      for (;;) {
        while (state.inbox.length) {
          m = state.inbox.shift();
          if (m.method === M.ack) {
            acked = Math.max(acked, m.offset);
            self._event('sentAcknowledgment', info, m.offset, { packet: m.packet });
          } else if (m.method === M.request) {
            acked = Math.max(acked, m.offset);
            limit = Math.max(limit, m.offset + m.count * chunk);
            if (m.retransmit && digest === null && m.offset < pos) { pos = m.offset; limit = m.offset + m.count * chunk; }
          } else if (m.method === M.complete) {
            if (m.sha256 !== digest) fail({ message: 'the receiver SHA-256 differs', code: 8 });
            self._event('sent', info, size, { sha256: digest });
            return { fileId: idHex, size: size, resumedAt: resumedAt, sha256: digest };
          } else if (m.method === M.error || m.method === M.cancel || m.method === M.refuse) {
            fail(m);
          }
        }
        var allowed = digest === null && pos < size &&
          (o.qos === 0 || (o.qos === 1 ? pos < acked + window * chunk : pos < limit));
        if (digest === null && pos >= size) {
          digest = hex(hash.digest());
          var w = new Writer(M.complete, id, 32).bytes(unhex(digest));
          this._send(w);
          continue;
        }
        if (!allowed) { state.inbox.push(await next()); continue; }
        while (this.ws.bufferedAmount > 4 * chunk) await new Promise(function (r) { setTimeout(r, 2); });
        var len = Math.min(chunk, size - pos);
        var bytes = new Uint8Array(await blob.slice(pos, pos + len).arrayBuffer());
        if (pos + len > hashed) { hash.update(bytes.subarray(hashed - pos)); hashed = pos + len; }
        this._send(new Writer(M.data, id, 16 + len).u64(packet++).u64(pos).bytes(bytes));
        pos += len;
        self._event('sentFragment', info, pos);
      }
    } catch (e) {
      if (e.code === undefined) self._event('sentError', info, 0, { error: String(e.message || e) });
      throw e;
    } finally {
      delete this.outgoing[idHex];
    }
  };

  // Receiving.
  WskitFiles.prototype._reply = function (id, method, fill, extra) {
    var w = new Writer(method, unhex(id), extra);
    fill(w);
    this._send(w);
  };
  // QoS 2 credit from what we hold: `window` chunks past `stored` (retransmit: rewind the sender).
  WskitFiles.prototype._grant = function (t, retransmit) {
    var win = this.opts.window, at = t.stored;
    t.credit = at + win * t.chunk;
    if (this.ws.readyState !== 1) return;
    this._reply(t.info.id, M.request, function (w) { w.u64(at).u32(win).u8(retransmit ? 1 : 0); }, 13);
  };
  // Ends a receiving transfer: tells the sender (unless it ended it) and fires the error events.
  WskitFiles.prototype._endIncoming = function (t, code, message, tell) {
    if (this.incoming[t.info.id] !== t) return;
    delete this.incoming[t.info.id];
    clearTimeout(t.timer);
    t.parts = null; t.pending = null;
    if (tell && this.ws.readyState === 1) {
      var msg = enc.encode(message);
      this._reply(t.info.id, M.error, function (w) { w.u16(code).str(msg); }, 2 + 2 + msg.length);
    }
    this._event('receivedError', t.info, t.stored, { error: message, code: code });
  };
  // The transfer's clock: QoS 2 asks again after `interval` without a chunk; any QoS gives up
  // after `timeout` without a message. Data only moves the deadlines; the timer re-arms itself.
  WskitFiles.prototype._arm = function (t) {
    var self = this, due = t.last + this.opts.timeout;
    if (t.retryAt !== null) due = Math.min(due, t.retryAt);
    t.timer = setTimeout(function () { self._tick(t); }, Math.max(0, due - Date.now()));
  };
  WskitFiles.prototype._tick = function (t) {
    if (this.incoming[t.info.id] !== t) return;
    var now = Date.now();
    if (now >= t.last + this.opts.timeout) {
      this._endIncoming(t, 9, 'no data from the sender for ' + this.opts.timeout + ' ms', true);
      return;
    }
    if (t.retryAt !== null && now >= t.retryAt && t.stored < t.info.size) {
      t.rewound = true;
      this._grant(t, true);
      t.retryAt = now + this.opts.interval;
    }
    this._arm(t);
  };
  WskitFiles.prototype._receive = function (m) {
    var self = this, t = this.incoming[m.id], now = Date.now();
    if (m.method === M.offer) {
      var info = { id: m.id, name: m.name, size: m.size, qos: m.qos, channel: m.channel, data: m.data };
      var verdict = badName(m.name) ? 'invalid file name' : (this.opts.authorize ? this.opts.authorize(info) : true);
      if (verdict !== true || t || m.qos > 2 || m.chunk === 0) {
        var why = enc.encode(typeof verdict === 'string' ? verdict : (m.qos > 2 ? 'unsupported QoS' : 'refused'));
        var code = badName(m.name) ? 2 : (m.qos > 2 ? 14 : 12);
        this._reply(m.id, M.refuse, function (w) { w.u16(code).str(why); }, 2 + 2 + why.length);
        this._event('receivedError', info, 0, { error: 'refused', code: code });
        return;
      }
      var win = this.opts.window;
      t = {
        info: info, chunk: m.chunk, stored: 0, hash: new Sha256(),
        parts: [],          // Blob parts of about PART bytes
        pending: [], pendingBytes: 0, // chunks not yet gathered into a Blob part
        credit: 0, rewound: false, gapAt: -1,
        last: now, retryAt: m.qos === 2 ? now + this.opts.interval : null, timer: null,
      };
      this.incoming[m.id] = t;
      this._reply(m.id, M.accept, function (w) { w.u64(0).u32(win); }, 12);
      if (m.qos === 2) this._grant(t, false);
      this._arm(t);
      this._event('receivedAuthorization', info, 0);
      return;
    }
    if (!t) return;
    if (m.method === M.data) {
      var len = m.chunk.length;
      if (len === 0 || len > t.chunk || m.offset + len > t.info.size) return this._endIncoming(t, 4, 'chunk out of range', true);
      t.last = now;
      if (m.offset > t.stored) {
        if (t.info.qos !== 2) return this._endIncoming(t, 5, 'out-of-order chunk', true);
        // A gap (a chunk went missing): drop it and ask again from what we hold, once per gap.
        if (t.gapAt !== t.stored) { t.gapAt = t.stored; t.rewound = true; this._grant(t, true); }
        return;
      }
      if (t.info.qos === 2 && m.offset + len > t.credit) return this._endIncoming(t, 16, 'chunk beyond the credit granted', true);
      if (t.retryAt !== null) t.retryAt = now + this.opts.interval;
      if (m.offset < t.stored) {
        if (!(t.info.qos === 2 && t.rewound)) return this._endIncoming(t, 6, 'duplicate chunk', true);
        if (m.offset + len <= t.stored) return;
      }
      var fresh = m.chunk.slice(t.stored - m.offset);
      t.hash.update(fresh);
      t.pending.push(fresh);
      t.pendingBytes += fresh.length;
      if (t.pendingBytes >= PART) { t.parts.push(new Blob(t.pending)); t.pending = []; t.pendingBytes = 0; }
      t.stored += fresh.length;
      this._event('receivedFragment', t.info, t.stored, { packet: m.packet });
      if (t.info.qos === 1) {
        this._reply(m.id, M.ack, function (w) { w.u64(m.packet).u64(t.stored); }, 16);
      } else if (t.info.qos === 2 && t.stored < t.info.size && t.credit - t.stored <= (this.opts.window * t.chunk) / 2) {
        this._grant(t, false);
      }
    } else if (m.method === M.complete) {
      if (t.stored !== t.info.size) return this._endIncoming(t, 16, 'complete before the last byte', true);
      var digest = hex(t.hash.digest());
      if (digest !== m.sha256) return this._endIncoming(t, 8, 'SHA-256 mismatch', true);
      delete this.incoming[m.id];
      clearTimeout(t.timer);
      this._reply(m.id, M.complete, function (w) { w.bytes(unhex(digest)); }, 32);
      var blob = new File(t.parts.concat(t.pending), t.info.name, { type: 'application/octet-stream' });
      var file = { name: t.info.name, size: t.info.size, blob: blob, sha256: digest, channel: t.info.channel, data: t.info.data };
      this._event('received', t.info, t.stored, { sha256: digest });
      this._emit('file', file);
    } else if (m.method === M.error || m.method === M.cancel) {
      this._endIncoming(t, m.code, m.message, false);
    } else {
      t.last = now;
    }
  };

  WskitFiles.download = function (file) {
    var a = root.document.createElement('a');
    a.href = URL.createObjectURL(file.blob);
    a.download = file.name;
    root.document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  };

  root.WskitFiles = WskitFiles;
  if (typeof module === 'object' && module && module.exports) module.exports = WskitFiles;
})(typeof window !== 'undefined' ? window : globalThis);
