// tus-js-client (Node) uploads FILE to ENDPOINT in CHUNK-byte PATCHes.
// Phase "start": aborts once STOP bytes are uploaded and prints the upload URL.
// Phase "resume": resumes the upload at URL (HEAD first) and prints the final offset.
// usage: node tus_js_upload.mjs start ENDPOINT FILE CHUNK STOP
//        node tus_js_upload.mjs resume ENDPOINT FILE CHUNK URL
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const [phase, endpoint, file, chunk, arg] = process.argv.slice(2);
const data = fs.readFileSync(file);
const options = {
  endpoint,
  chunkSize: Number(chunk),
  retryDelays: null,
  metadata: { filename: 'from-tus-js.bin', filetype: 'application/octet-stream' },
};
if (phase === 'resume') options.uploadUrl = arg;

const upload = new tus.Upload(data, {
  ...options,
  onError(err) {
    console.error(`error: ${err}`);
    process.exit(1);
  },
  onChunkComplete(_size, accepted) {
    if (phase === 'start' && accepted >= Number(arg)) {
      upload.abort().then(() => {
        console.log(upload.url);
        console.log(accepted);
        process.exit(0);
      });
    }
  },
  onSuccess() {
    console.log(upload.url);
    console.log(data.length);
    process.exit(0);
  },
});
upload.start();
