/** Socket type rules: which outputs may feed which inputs, and the colour of each type. */

/** Split a ComfyUI type string: "*" and "" mean any; "A,B" accepts either. */
function parts(type: string): string[] | null {
  const t = type.trim();
  if (t === "" || t === "*") return null;
  return t.split(",").map((p) => p.trim().toUpperCase()).filter(Boolean);
}

/** True when an output of type `from` may be linked to an input of type `to`. */
export function typesCompatible(from: string, to: string): boolean {
  const a = parts(from);
  const b = parts(to);
  if (a === null || b === null) return true;
  return a.some((x) => b.includes(x));
}

/** Colours per type, tuned for the dark theme; unknown types get a stable hashed hue. */
export const TYPE_COLORS: Record<string, string> = {
  MODEL: "#b39ddb",
  CLIP: "#ffd54f",
  VAE: "#ef5350",
  CONDITIONING: "#ffa726",
  LATENT: "#ec407a",
  IMAGE: "#64b5f6",
  MASK: "#81c784",
  CONTROL_NET: "#26a69a",
  CLIP_VISION: "#a1887f",
  CLIP_VISION_OUTPUT: "#8d6e63",
  STYLE_MODEL: "#9ccc65",
  UPSCALE_MODEL: "#7e57c2",
  SAMPLER: "#4dd0e1",
  SIGMAS: "#4db6ac",
  NOISE: "#b0bec5",
  GUIDER: "#90a4ae",
  INT: "#7cb342",
  FLOAT: "#aed581",
  STRING: "#4fc3f7",
  BOOLEAN: "#f06292",
  COMBO: "#9fa8da",
};

export function typeColor(type: string): string {
  const key = type.toUpperCase();
  const known = TYPE_COLORS[key];
  if (known) return known;
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360}, 55%, 62%)`;
}
