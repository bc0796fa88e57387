// The objects the package hands to JavaScript (events, errors, remembered
// uploads) carry exactly the fields that the generated declarations
// (js/generated/api.d.ts, from crates/chunkup-api) give them, against the
// reference server (`chunkup serve`) on 127.0.0.1.
// Needs CHUNKUP_BIN (the chunkup binary); CHUNKUP_PKG (default ../pkg).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PKG, loadPackage, memoryStorage, startReferenceServer } from './support/reference-server.mjs';

// What only JavaScript adds (declared by hand in index.d.ts), per event type.
const WEB_ONLY_FIELDS = { progress: ['etaSeconds'], failed: ['error'] };
const WEB_ONLY_EVENTS = new Set(['transport', 'offline', 'online', 'finished']);

let chunkup;
let server;
let base;

/** `export type NAME = ...;` of the generated file (its comments left out). */
function declaration(source, name) {
  const start = source.indexOf(`export type ${name} = `);
  assert.ok(start >= 0, `${name} is not declared`);
  return source.slice(start, source.indexOf(';\n', start));
}

/** A union of objects tagged by `tag`: tag value -> its field names (the tag left out). */
function shapes(source, name, tag) {
  const union = new Map();
  for (const member of declaration(source, name).split(/\}\s*\|\s*\{/)) {
    const value = new RegExp(`"${tag}": "(\\w+)"`).exec(member)?.[1];
    assert.ok(value, `a member of ${name} without ${tag}: ${member}`);
    union.set(value, [...member.matchAll(/(\w+)\??:/g)].map((m) => m[1]).sort());
  }
  return union;
}

/** An object type's field names. */
function fields(source, name) {
  return [...declaration(source, name).matchAll(/(\w+)\??:/g)].map((m) => m[1]).sort();
}

const generated = readFileSync(join(PKG, 'generated', 'api.d.ts'), 'utf8').replace(/\/\*\*[\s\S]*?\*\//g, '');
const EVENTS = shapes(generated, 'UploadEvent', 'type');
const ERRORS = shapes(generated, 'UploadError', 'kind');

/** Asserts that `event` has the fields its type declares, and no others. */
function assertDeclaredEvent(event) {
  const declared = EVENTS.get(event.type);
  assert.ok(declared, `event type '${event.type}' is not declared`);
  const expected = [...declared, ...(WEB_ONLY_FIELDS[event.type] ?? [])].sort();
  const actual = Object.keys(event).filter((k) => k !== 'type').sort();
  assert.deepEqual(actual, expected, `fields of '${event.type}'`);
}

/** Asserts that a plain error object has its kind's declared fields (status only when there was one). */
function assertDeclaredError(error) {
  const declared = ERRORS.get(error.kind);
  assert.ok(declared, `error kind '${error.kind}' is not declared`);
  const actual = Object.keys(error).filter((k) => k !== 'kind').sort();
  const expected = declared.filter((k) => k !== 'status' || 'status' in error);
  assert.deepEqual(actual, expected, `fields of error ${error.kind}`);
  assert.equal(typeof error.retryable, 'boolean');
}

const setFaults = (spec) => server.setFaults(spec);

before(async () => {
  chunkup = await loadPackage();
  server = await startReferenceServer('declared');
  base = server.base;
});

after(() => {
  delete globalThis.localStorage;
  server?.stop();
});

test('the generated declarations parse: every event type and error kind', () => {
  assert.deepEqual([...ERRORS.keys()].length, 19);
  for (const type of ['created', 'chunk', 'progress', 'retrying', 'completed', 'failed', 'stopped']) {
    assert.ok(EVENTS.has(type), type);
  }
  assert.ok(ERRORS.get('Rejected').includes('retryable'));
});

test('events of an upload that retries carry the declared fields', async () => {
  await setFaults('script=1:error@503');
  const events = [];
  const up = new chunkup.Upload(new Blob([randomBytes(300 * 1024)]), {
    endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 128 * 1024, resume: false,
    retryDelays: [0], progressIntervalMs: 0,
    onEvent: (e) => events.push(e),
  });
  await up.start();
  await setFaults('none');
  const declared = events.filter((e) => !WEB_ONLY_EVENTS.has(e.type));
  for (const event of declared) assertDeclaredEvent(event);
  const types = new Set(declared.map((e) => e.type));
  for (const type of ['discovered', 'created', 'chunk', 'progress', 'retrying', 'completed']) {
    assert.ok(types.has(type), `no '${type}' among ${[...types]}`);
  }
  const retry = events.find((e) => e.type === 'retrying');
  assert.equal(retry.status, 503);
  assert.equal(retry.reasonKind, 'status');
  const progress = events.findLast((e) => e.type === 'progress');
  assert.ok(progress.etaMs === null || Number.isInteger(progress.etaMs));
});

test('a refused upload: the failed event and the UploadError carry the declared fields', async () => {
  await setFaults('none');
  const events = [];
  const up = new chunkup.Upload(new Blob([randomBytes(1024)]), {
    endpoint: `${base}/no-such-endpoint`, protocol: 'tus', resume: false, retries: 1,
    onEvent: (e) => events.push(e),
  });
  const error = await up.start().then(
    () => assert.fail('the upload should fail'),
    (e) => e,
  );
  assert.ok(error instanceof chunkup.UploadError);
  const failed = events.find((e) => e.type === 'failed');
  assert.ok(failed, `no failed event among ${events.map((e) => e.type)}`);
  assertDeclaredEvent(failed);
  assertDeclaredError(failed.error);
  assert.equal(failed.kind, error.kind);
  assert.equal(failed.retryable, error.retryable);
  assert.equal(failed.status ?? undefined, error.status);
  assertDeclaredError({ kind: error.kind, message: error.message, retryable: error.retryable,
    ...(error.status === undefined ? {} : { status: error.status }) });
});

test('remembered uploads carry the declared fields', async () => {
  await setFaults('none');
  globalThis.localStorage = memoryStorage();
  const file = new File([randomBytes(600 * 1024)], 'kept.bin', { lastModified: 1700000000900 });
  const up = new chunkup.Upload(file, {
    endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 128 * 1024, metadata: { note: 'x' },
    onEvent: (e) => {
      if (e.type === 'chunk') void up.stop();
    },
  });
  await assert.rejects(up.start(), (e) => e.kind === 'Stopped' && e.retryable === false);
  const [remembered] = await chunkup.listRememberedUploads();
  assert.ok(remembered, 'the stopped upload is remembered');
  assert.deepEqual(Object.keys(remembered).sort(), fields(generated, 'RememberedUpload'));
  assert.equal(remembered.fileName, 'kept.bin');
  assert.deepEqual(remembered.metadata.note, 'x');
  await chunkup.forgetRememberedUpload(remembered);
});
