// Connects WskitFiles to arg.url with arg.options, waits for the first file the server sends or
// for an error, and returns what it saw: the file's name, size, SHA-256 (the client's, and
// crypto.subtle's of the received Blob), whether the Blob is a File with the name, the number of
// progress events with the last position, and every error event.
async function run(arg) {
  const files = new WskitFiles(arg.url, arg.options);
  await files.ready;
  const progress = {count: 0, last: 0, monotonic: true};
  const events = {};
  const errors = [];
  files.on('event', (e) => {
    events[e.kind] = (events[e.kind] || 0) + 1;
    if (e.kind === 'receivedFragment') {
      if (e.position <= progress.last) progress.monotonic = false;
      progress.count++;
      progress.last = e.position;
    }
  });
  const outcome = await new Promise((resolve) => {
    files.on('file', (f) => resolve({file: f}));
    files.on('error', (e) => resolve({error: e}));
  });
  const result = {events, progress, errors};
  if (outcome.file) {
    const f = outcome.file;
    const digest = await crypto.subtle.digest('SHA-256', await f.blob.arrayBuffer());
    result.file = {
      name: f.name,
      size: f.size,
      sha256: f.sha256,
      blobSize: f.blob.size,
      isFile: f.blob instanceof File,
      blobName: f.blob.name,
      subtleSha: Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, '0')).join(''),
    };
  } else {
    const e = outcome.error;
    result.error = {code: e.code, message: e.message, direction: e.direction, fileName: e.fileName};
  }
  files.close();
  return result;
}
