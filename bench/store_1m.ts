/**
 * The benchmark's store of 1,000,000 references, built once and reused: `$TMPDIR/rtcv_bench_1m.kv` (or
 * `RTCV_BENCH_1M_KV`), with a side file `<path>.json` that records how and when it was built. It is rebuilt
 * when the side file is missing or names another layout or count, when it is older than
 * {@linkcode MAX_AGE_MS} (its entries expire after 72 hours), or with `--rebuild-1m`.
 *
 * @module
 */

import { LAYOUT } from "./build_1m_store.ts";

/** Rebuild after this long, well before the 72-hour entries expire. */
const MAX_AGE_MS = 48 * 60 * 60 * 1000;

/** What the side file records. */
interface StoreMeta {
  readonly layout: string;
  readonly count: number;
  readonly first: number;
  readonly builtAt: number;
  readonly buildSeconds: number;
}

/** A store ready to be opened by the client. */
export interface PreparedStore {
  readonly path: string;
  /** The first reference number in it; the rest follow consecutively. */
  readonly first: number;
  readonly count: number;
  /** True when it was built by this run. */
  readonly built: boolean;
  readonly builtAt: number;
  readonly buildSeconds: number;
}

/** Where the shared 1M store lives. */
export function defaultStorePath(): string {
  const override = Deno.env.get("RTCV_BENCH_1M_KV");
  if (override) return override;
  const dir = Deno.env.get("TMPDIR") || "/tmp";
  return `${dir}/rtcv_bench_1m.kv`;
}

/** Reuses the store at `path` when its side file matches, else builds it with `build_1m_store.ts`. */
export async function prepareStore(options: {
  path: string;
  count: number;
  first: number;
  benchDir: string;
  rebuild: boolean;
  progress: (message: string) => void;
}): Promise<PreparedStore> {
  const { path, count, first } = options;
  const metaPath = `${path}.json`;
  if (!options.rebuild) {
    const meta = readMeta(metaPath);
    const fresh = meta !== null && meta.layout === LAYOUT && meta.count === count && meta.first === first &&
      Date.now() - meta.builtAt < MAX_AGE_MS && exists(path);
    if (fresh) {
      return { path, first, count, built: false, builtAt: meta.builtAt, buildSeconds: meta.buildSeconds };
    }
  }
  options.progress(`building the store of ${count} references at ${path} (once; reused by later runs)`);
  await Deno.remove(metaPath).catch(() => {});
  for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(path + suffix).catch(() => {});
  const started = performance.now();
  const status = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      `${options.benchDir}/build_1m_store.ts`,
      path,
      String(count),
      String(first),
    ],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!status.success) throw new Error(`building the store at ${path} failed (exit code ${status.code})`);
  const meta: StoreMeta = {
    layout: LAYOUT,
    count,
    first,
    builtAt: Date.now(),
    buildSeconds: (performance.now() - started) / 1000,
  };
  Deno.writeTextFileSync(metaPath, JSON.stringify(meta, null, 2) + "\n");
  return { path, first, count, built: true, builtAt: meta.builtAt, buildSeconds: meta.buildSeconds };
}

function readMeta(path: string): StoreMeta | null {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as StoreMeta;
  } catch {
    return null;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
