// Compiled by the Node test with `tsc --strict --noEmit` against the
// installed package: the declarations must describe the API as documented.
import {
  Upload,
  forgetRememberedUpload,
  listRememberedUploads,
  type RememberedUpload,
  UploadError,
  init,
  type HeaderRequest,
  type Progress,
  type RetryCause,
  type SignRequest,
  type SignedRequest,
  type UploadOptions,
  type UploadSource,
  type UploadEvent,
  type ErrorKind,
  type UploadErrorFields,
} from 'chunkup';

export async function example(file: File, blob: Blob): Promise<string | null> {
  await init();
  const options: UploadOptions = {
    endpoint: 'http://127.0.0.1:1/tus',
    uploadUrl: undefined,
    protocol: 'auto',
    chunkSize: 'auto',
    metadata: { filename: file.name },
    headers: { Authorization: 'Bearer x' },
    resume: true,
    fingerprint: 'sha256:0123',
    parallel: 2,
    signal: new AbortController().signal,
    retries: 3,
    transport: 'xhr',
    onProgress: (p: Progress) => {
      const eta: number | null = p.etaSeconds;
      const etaMs: number | null = p.etaMs;
      void [p.bytesAcknowledged, p.bytesSent, p.bytesTotal, p.speed, eta, etaMs];
    },
    onChunkComplete: (chunkBytes: number, acked: number, total: number | null) => void [chunkBytes, acked, total],
    onError: (e: UploadError) => {
      const kind: string = e.kind;
      const status: number | undefined = e.status;
      const retryable: boolean = e.retryable;
      void [kind, status, e.message, retryable];
    },
    onSuccess: (r: { url: string | null }) => void r.url,
    onEvent: (e) => {
      const type: string = e.type;
      // A discriminated union: each type's fields, typed.
      switch (e.type) {
        case 'chunk':
        case 'resumed': {
          const offset: number = e.offset;
          void offset;
          break;
        }
        case 'retrying': {
          const status: number | null = e.status;
          void [status, e.reasonKind, e.reason, e.delayMs, e.attempt];
          break;
        }
        case 'failed': {
          const kind: ErrorKind = e.kind;
          const nested: UploadErrorFields = e.error;
          void [kind, e.retryable, e.status, e.message, nested.kind];
          break;
        }
        case 'discovered': {
          const max: number | null = e.maxSize;
          void [max, e.extensions.join(','), e.protocol];
          break;
        }
        case 'transport':
          void e.name;
          break;
        default:
          break;
      }
      void type;
    },
  };
  const up = new Upload(file, options);
  const other = new Upload(blob, { endpoint: 'http://127.0.0.1:1/ranged', chunkSize: 1 << 20 });
  up.pause();
  up.resume();
  const url: string | null = up.url;
  const done: Promise<{ url: string | null }> = up.done;
  await other.abort();
  await other.abort(true);
  await other.stop();
  await other.terminate();
  const events: UploadEvent[] = [
    { type: 'resumed', offset: 5 },
    { type: 'discovered', protocol: 'tus', assumed: false, extensions: ['creation'], maxSize: null },
    { type: 'completed', url: null },
    { type: 'stopped' },
    { type: 'terminated' },
    { type: 'retrying', attempt: 1, delayMs: 200, reason: 'the signed URL expired', reasonKind: 'signatureExpired', status: 403 },
    { type: 'rewound', from: 10, to: 5 },
    { type: 'expires', at: 0 },
    {
      type: 'failed', kind: 'Rejected', message: 'no', status: 403, retryable: false,
      error: { kind: 'Rejected', message: 'no', status: 403, retryable: false },
    },
  ];
  void [url, done, events];
  try {
    return (await up.start()).url;
  } catch (e) {
    if (e instanceof UploadError && (e.kind === 'Stopped' || e.kind === 'Terminated')) return '';
    throw e;
  }
}

// @ts-expect-error: an event's fields are typed by its type
export const wrongOffset: UploadEvent = { type: 'chunk', offset: '5' };
// @ts-expect-error: not an error kind
export const wrongKind: ErrorKind = 'Other';

// @ts-expect-error: endpoint is required
new Upload(new Blob([]), {});
// @ts-expect-error: not a protocol
new Upload(new Blob([]), { endpoint: 'x', protocol: 'ftp' });

// S3 through a backend that presigns; GCS continuing a session URI.
export function objectStorage(file: File): [Upload, Upload] {
  const sign = async (request: SignRequest): Promise<SignedRequest> => {
    const { method, url, action, uploadId, partNumber } = request;
    const answer = await fetch('/api/s3/sign', { method: 'POST', body: JSON.stringify({ method, url, action, uploadId, partNumber }) });
    return (await answer.json()) as SignedRequest;
  };
  const s3 = new Upload(file, { endpoint: 'https://b.s3.amazonaws.com/k', protocol: 's3', sign, parallel: 4 });
  const gcs = new Upload(file, { endpoint: 'x', uploadUrl: 'https://storage.googleapis.com/upload/x?upload_id=1', protocol: 'gcs' });
  return [s3, gcs];
}

// @ts-expect-error: a signer answers a URL
new Upload(new Blob([]), { endpoint: 'x', protocol: 's3', sign: () => ({ headers: {} }) });

// Retry control: explicit delays and an async decision.
export function retryControl(blob: Blob): Upload {
  const onShouldRetry = async (cause: RetryCause, attempt: number): Promise<boolean> =>
    attempt < 3 && cause.kind !== 'credentialsRefused' && (cause.status ?? 500) >= 500;
  return new Upload(blob, { endpoint: 'x', retryDelays: [0, 1000, 3000], onShouldRetry });
}

// @ts-expect-error: retryDelays are numbers of milliseconds
new Upload(new Blob([]), { endpoint: 'x', retryDelays: ['1s'] });

// Credentials from the app, refreshed after a 401/403.
export function credentials(blob: Blob, token: (fresh: boolean) => Promise<string>): Upload {
  const getHeaders = async ({ refresh }: HeaderRequest) => ({ Authorization: `Bearer ${await token(refresh)}` });
  return new Upload(blob, { endpoint: 'x', getHeaders });
}

// @ts-expect-error: header values are strings
new Upload(new Blob([]), { endpoint: 'x', getHeaders: () => ({ 'X-N': 1 }) });

// Remembered uploads: the file's own, all of them, and forgetting one.
export async function remembered(file: File): Promise<number> {
  const up = new Upload(file, { endpoint: 'x' });
  const mine: RememberedUpload[] = await up.findPreviousUploads();
  if (mine[0]) up.resumeFromPreviousUpload(mine[0]);
  const all = await listRememberedUploads();
  for (const old of all.filter((r) => r.expiresMs !== null && r.acknowledged < r.size)) await forgetRememberedUpload(old);
  await forgetRememberedUpload(all[0]?.key ?? '');
  return all.length;
}

// Sources: bytes, a path or file: URL (Node), a stream of unknown length.
export function sources(bytes: Uint8Array, buffer: ArrayBuffer, stream: ReadableStream<Uint8Array>): UploadSource[] {
  new Upload(bytes, { endpoint: 'x' });
  new Upload(buffer, { endpoint: 'x' });
  new Upload('/data/movie.mp4', { endpoint: 'x' });
  new Upload(new URL('file:///data/movie.mp4'), { endpoint: 'x' });
  new Upload(stream, {
    endpoint: 'x',
    protocol: 'tus',
    onChunkComplete: (_chunk, _acked, total: number | null) => void total,
  });
  // @ts-expect-error: a number is no source
  new Upload(42, { endpoint: 'x' });
  return [bytes, buffer, stream, 'path'];
}
