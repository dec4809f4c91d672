/**
 * Builds a Deno.Kv store of reference numbers for the benchmark, in the layout of the client's reference
 * cache. Run by `store_1m.ts` as a child process (so the driver itself needs no `--unstable-kv`):
 *
 *     deno run -A --unstable-kv bench/build_1m_store.ts <path> <count> <first number>
 *
 * The layout MIRRORS `src/cache/reference_cache.ts` (nothing is imported from src/, on purpose: the bench
 * must describe the file format independently): key `["ref", "<reference number>"]` →
 * `Deno.KvU64(expiry time in ms since the epoch)`, written with `expireIn` = 72 hours, the lifetime of
 * `set_cached_reference`. The reference numbers are the decimal strings of `first .. first + count - 1`.
 * If the client's layout changes, change {@linkcode LAYOUT} here and in `store_1m.ts` so old stores rebuild.
 *
 * @module
 */

/** Names this layout; stored in the side file so a store in an older layout is rebuilt. */
export const LAYOUT = "ref-kvu64-expireIn72h-v1";

/** The lifetime of a `set_cached_reference` entry. */
export const LONG_LIFETIME_MS = 72 * 60 * 60 * 1000;

/** The most mutations one Deno.Kv atomic operation takes. */
const MUTATIONS_PER_ATOMIC = 1000;
/** Atomic operations committing at once (2–4 is fastest on one SQLite thread, see PERFORMANCE.md). */
const IN_FLIGHT = 3;

/** Writes `count` references starting at `first` into the store at `path`; resolves once all are committed. */
export async function buildStore(
  path: string,
  count: number,
  first: number,
  progress: (done: number) => void = () => {},
): Promise<void> {
  const kv = await Deno.openKv(path);
  try {
    const expiry = new Deno.KvU64(BigInt(Date.now() + LONG_LIFETIME_MS));
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < count) {
        const start = next;
        const end = Math.min(count, start + MUTATIONS_PER_ATOMIC);
        next = end;
        const atomic = kv.atomic();
        for (let i = start; i < end; i++) {
          atomic.set(["ref", String(first + i)], expiry, { expireIn: LONG_LIFETIME_MS });
        }
        const result = await atomic.commit();
        if (!result.ok) throw new Error(`the store refused the commit of references ${start}..${end - 1}`);
        const before = done;
        done += end - start;
        if (Math.floor(before / 100_000) !== Math.floor(done / 100_000)) progress(done);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  } finally {
    kv.close();
  }
}

if (import.meta.main) {
  const [path, countText, firstText] = Deno.args;
  const count = Number(countText);
  const first = Number(firstText);
  if (!path || !Number.isSafeInteger(count) || !Number.isSafeInteger(first)) {
    throw new Error("usage: build_1m_store.ts <path> <count> <first number>");
  }
  const started = performance.now();
  await buildStore(path, count, first, (done) => {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    Deno.stderr.writeSync(new TextEncoder().encode(`  store: ${done} references in ${seconds} s\n`));
  });
}
