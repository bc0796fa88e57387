// The page of the bundler check: the package as an application imports it.
import { Upload, UploadError } from 'chunkup';

window.runUpload = async (endpoint, size) => {
  const bytes = new Uint8Array(size).map((_, i) => (i * 7) % 256);
  const events = [];
  const up = new Upload(new Blob([bytes]), {
    endpoint,
    protocol: 'auto',
    chunkSize: 64 * 1024,
    resume: false,
    onEvent: (e) => events.push(e.type === 'transport' ? `transport:${e.name}` : e.type),
  });
  const { url } = await up.start();
  const progress = events.filter((e) => e === 'progress').length;
  return { url, transport: events[0], progress, isError: typeof UploadError };
};
