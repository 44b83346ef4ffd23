/** Fuzzy node search over names, display names, categories and descriptions. */
import type { NodeDef } from "./nodedefs";
import { typesCompatible } from "./types";

export interface SearchFilter {
  /** Only nodes with an input accepting this output type. */
  inputType?: string;
  /** Only nodes with an output feeding this input type. */
  outputType?: string;
}

/**
 * Score how well `query` matches `text`: contiguous substring beats word-start
 * subsequence beats scattered subsequence; 0 means no match.
 */
export function fuzzyScore(query: string, text: string): number {
  const q = query.toLowerCase();
  const t = text.toLowerCase();
  if (!q) return 1;
  if (t === q) return 1000;
  const at = t.indexOf(q);
  if (at === 0) return 800 - t.length;
  if (at > 0) {
    const wordStart = !/[a-z0-9]/.test(t[at - 1]);
    return (wordStart ? 600 : 400) - at - t.length / 10;
  }
  // Subsequence match, rewarding consecutive characters and word starts.
  let score = 0;
  let ti = 0;
  let run = 0;
  for (const ch of q) {
    if (ch === " ") continue;
    let found = -1;
    for (let k = ti; k < t.length; k++) {
      if (t[k] === ch) {
        found = k;
        break;
      }
    }
    if (found < 0) return 0;
    const boundary = found === 0 || !/[a-z0-9]/.test(t[found - 1]) || (text[found] >= "A" && text[found] <= "Z");
    run = found === ti ? run + 1 : 0;
    score += 10 + run * 5 + (boundary ? 8 : 0) - Math.min(found - ti, 10);
    ti = found + 1;
  }
  return Math.max(1, score);
}

export function matchesFilter(def: NodeDef, filter: SearchFilter): boolean {
  if (filter.inputType !== undefined) {
    const t = filter.inputType;
    if (!def.inputs.some((i) => typesCompatible(t, i.type))) return false;
  }
  if (filter.outputType !== undefined) {
    const t = filter.outputType;
    if (!def.outputs.some((o) => typesCompatible(o.type, t))) return false;
  }
  return true;
}

export interface SearchHit {
  def: NodeDef;
  score: number;
}

/** Rank node definitions for a query; every query word must match somewhere. */
export function searchNodes(defs: Iterable<NodeDef>, query: string, filter: SearchFilter = {}, limit = 50): SearchHit[] {
  const words = query.trim().split(/\s+/).filter(Boolean);
  const hits: SearchHit[] = [];
  for (const def of defs) {
    if (def.deprecated && !query) continue;
    if (!matchesFilter(def, filter)) continue;
    let total = 0;
    let ok = true;
    for (const w of words) {
      const s = Math.max(
        fuzzyScore(w, def.displayName) * 1.2,
        fuzzyScore(w, def.name) * 1.1,
        fuzzyScore(w, def.category) * 0.6,
        // Long descriptions would match almost any letters scattered; require a substring there.
        def.description.toLowerCase().includes(w.toLowerCase()) ? fuzzyScore(w, def.description) * 0.3 : 0,
      );
      if (s <= 0) {
        ok = false;
        break;
      }
      total += s;
    }
    if (!ok) continue;
    if (words.length > 1) total += fuzzyScore(query.trim(), def.displayName) * 0.5;
    if (def.deprecated) total *= 0.5;
    hits.push({ def, score: total });
  }
  hits.sort((a, b) => b.score - a.score || a.def.displayName.localeCompare(b.def.displayName));
  // Scattered-letter matches far below the best hit are noise once there is a good match.
  const best = hits[0]?.score ?? 0;
  const kept = words.length ? hits.filter((h) => h.score >= best * 0.2) : hits;
  return kept.slice(0, limit);
}
