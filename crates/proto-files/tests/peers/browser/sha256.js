// WskitFiles.Sha256 (the incremental SHA-256 of wskit-files.js) against the FIPS 180-4 vectors
// and against crypto.subtle.digest for every length 0..300 and a few large ones, fed in pieces of
// random sizes (so block boundaries fall everywhere). Returns {vectors, checked, mismatches}.
async function run() {
  const toHex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');
  const ours = (data, pieces) => {
    const h = new WskitFiles.Sha256();
    let i = 0;
    while (i < data.length) {
      const k = Math.min(data.length - i, pieces());
      h.update(data.subarray(i, i + k));
      i += k;
    }
    return toHex(h.digest());
  };
  const text = (s) => new TextEncoder().encode(s);
  const vectors = [
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq', '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
    ['abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu', 'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1'],
    ['a'.repeat(1000000), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0'],
  ];
  const mismatches = [];
  for (const [input, want] of vectors) {
    const got = ours(text(input), () => 1 + Math.floor(Math.random() * 200));
    if (got !== want) mismatches.push({input: input.slice(0, 20), len: input.length, got, want});
  }
  let checked = 0;
  const lengths = [];
  for (let n = 0; n <= 300; n++) lengths.push(n);
  lengths.push(4095, 4096, 4097, 65536 + 13, 1 << 20, 3 * (1 << 20) + 1);
  for (const n of lengths) {
    const data = new Uint8Array(n);
    for (let off = 0; off < n; off += 65536) crypto.getRandomValues(data.subarray(off, Math.min(n, off + 65536)));
    const want = toHex(await crypto.subtle.digest('SHA-256', data));
    const whole = ours(data, () => n || 1);
    const split = ours(data, () => 1 + Math.floor(Math.random() * (n < 1000 ? 70 : 100000)));
    if (whole !== want || split !== want) mismatches.push({len: n, whole, split, want});
    checked++;
  }
  return {vectors: vectors.length, checked, mismatches};
}
