/** Read text metadata (tEXt / iTXt / zTXt chunks) from PNG bytes, as ComfyUI and we embed workflows. */

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export class PngError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PngError";
  }
}

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

/** Map of keyword -> text for every text chunk before the image data ends. */
export async function readPngText(bytes: Uint8Array): Promise<Record<string, string>> {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new PngError("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Record<string, string> = {};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const len = view.getUint32(pos);
    const type = latin1.decode(bytes.subarray(pos + 4, pos + 8));
    const start = pos + 8;
    const end = start + len;
    if (end + 4 > bytes.length) throw new PngError(`truncated ${type} chunk`);
    const data = bytes.subarray(start, end);
    if (type === "tEXt") {
      const z = data.indexOf(0);
      if (z > 0) out[latin1.decode(data.subarray(0, z))] = utf8Fallback(data.subarray(z + 1));
    } else if (type === "zTXt") {
      const z = data.indexOf(0);
      if (z > 0) out[latin1.decode(data.subarray(0, z))] = latin1.decode(await inflate(data.subarray(z + 2)));
    } else if (type === "iTXt") {
      const z = data.indexOf(0);
      if (z > 0) {
        const key = latin1.decode(data.subarray(0, z));
        const compressed = data[z + 1] === 1;
        let p = z + 3;
        p = data.indexOf(0, p) + 1; // language tag
        p = data.indexOf(0, p) + 1; // translated keyword
        const body = data.subarray(p);
        out[key] = utf8.decode(compressed ? await inflate(body) : body);
      }
    } else if (type === "IEND") {
      break;
    }
    pos = end + 4;
  }
  return out;
}

/** tEXt is Latin-1 by spec, but ComfyUI writes UTF-8 JSON there; prefer UTF-8 when it decodes. */
function utf8Fallback(data: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return latin1.decode(data);
  }
}
