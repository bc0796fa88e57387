// The page's own list of unfinished uploads, for display after a reload.
// Resuming itself is the package's job (its resume store keeps the upload
// URL under a key of endpoint + name + size + lastModified); the page keeps
// this small list, with the endpoint each file went to, to tell the user
// which files to drop again.

/** Entries older than this are dropped (the server forgets uploads too). */
const MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** Progress is written at most this often per file. */
const WRITE_EVERY_MS = 1000;

export function createRemembered(storage, storageKey) {
  const lastWrite = new Map();

  function load() {
    try {
      const all = JSON.parse(storage.getItem(storageKey) ?? '{}');
      return all && typeof all === 'object' ? all : {};
    } catch {
      return {};
    }
  }

  function save(all) {
    try {
      storage.setItem(storageKey, JSON.stringify(all));
    } catch {
      // A full quota only costs the list, never the upload.
    }
  }

  function put(entry) {
    const all = load();
    all[entry.key] = {
      name: entry.file.name, size: entry.file.size, lastModified: entry.file.lastModified,
      total: entry.total, acked: entry.acked,
      protocol: entry.protocol, endpoint: entry.endpoint, updated: Date.now(),
    };
    save(all);
    lastWrite.set(entry.key, Date.now());
  }

  return {
    /** The same fields the package fingerprints, so one file maps to one entry. */
    key(file, endpoint) {
      return JSON.stringify([endpoint, file.name, file.size, file.lastModified]);
    },
    remember: put,
    progress(entry) {
      if (Date.now() - (lastWrite.get(entry.key) ?? 0) >= WRITE_EVERY_MS) put(entry);
    },
    /** The unfinished upload of this file, whichever endpoint it went to. */
    find(file) {
      return this.list().find((r) => r.name === file.name && r.size === file.size
        && r.lastModified === file.lastModified);
    },
    forget(key) {
      const all = load();
      delete all[key];
      save(all);
      lastWrite.delete(key);
    },
    list() {
      const now = Date.now();
      const all = load();
      const fresh = Object.entries(all).filter(([, r]) => now - r.updated < MAX_AGE_MS);
      if (fresh.length !== Object.keys(all).length) save(Object.fromEntries(fresh));
      return fresh.map(([key, r]) => ({ key, ...r })).sort((a, b) => b.updated - a.updated);
    },
  };
}
