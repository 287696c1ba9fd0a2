// tus-js-client's browser build (loaded by the page from /tus.min.js) uploads arg.size generated
// bytes as a File named arg.name to arg.endpoint (this page's origin or another one) in
// arg.chunk-byte PATCH requests, aborts once arg.abortAt bytes went out, reads the upload's
// offset with a HEAD of its own, then a second Upload finds the first through
// findPreviousUploads (the fingerprint tus-js-client keeps in localStorage) and resumes it.
// Also sends an OPTIONS request itself and reads the tus discovery headers (CORS-exposed when
// cross-origin). Returns what it saw and crypto.subtle's SHA-256 of the bytes.
async function run(arg) {
  const data = new Uint8Array(arg.size);
  let x = 12345;
  for (let i = 0; i < data.length; i++) { x = (x * 1103515245 + 12345) >>> 0; data[i] = x >>> 16; }
  const digest = await crypto.subtle.digest('SHA-256', data);
  const sha256 = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
  const file = new File([data], arg.name, {type: 'application/octet-stream', lastModified: 1700000000000});

  const options = await fetch(arg.endpoint, {method: 'OPTIONS'});
  const discovery = {
    status: options.status,
    version: options.headers.get('Tus-Version'),
    extensions: options.headers.get('Tus-Extension'),
  };

  const common = {
    endpoint: arg.endpoint,
    chunkSize: arg.chunk,
    retryDelays: null,
    metadata: {filename: arg.name, filetype: 'application/octet-stream'},
  };
  // First attempt: aborted once arg.abortAt bytes are out.
  const first = await new Promise((resolve, reject) => {
    let aborted = false;
    const upload = new tus.Upload(file, Object.assign({}, common, {
      onProgress(sent) {
        if (!aborted && sent >= arg.abortAt) {
          aborted = true;
          upload.abort().then(() => resolve({url: upload.url, sentAtAbort: sent}), reject);
        }
      },
      onSuccess() { reject(new Error('the first upload finished before the abort')); },
      onError: reject,
    }));
    upload.start();
  });
  const head = await fetch(first.url, {method: 'HEAD', headers: {'Tus-Resumable': '1.0.0'}});
  const offsetAfterAbort = Number(head.headers.get('Upload-Offset'));

  // Second attempt: a new Upload for the same File resumes the first one (retrying like an
  // application would, should the server still be finishing the aborted PATCH).
  const second = await new Promise((resolve, reject) => {
    let firstProgress = null;
    const upload = new tus.Upload(file, Object.assign({}, common, {
      retryDelays: [100, 500, 1000, 2000],
      onProgress(sent) { if (firstProgress === null) firstProgress = sent; },
      onSuccess() { resolve({url: upload.url, firstProgress}); },
      onError: reject,
    }));
    upload.findPreviousUploads().then((previous) => {
      if (previous.length === 0) { reject(new Error('findPreviousUploads found nothing')); return; }
      upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, reject);
  });
  return {origin: location.origin, sha256, size: data.length, discovery, first, offsetAfterAbort, headStatus: head.status, second};
}
