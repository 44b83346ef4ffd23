/**
 * Why each node ran or was served from the cache, worded for the canvas and the queue history.
 * The server sends `{state: "ran"|"cached"|"skipped", reason}` per node (lg.node_report and the
 * history's lg.run_report); reasons read like "new", "forced", "input seed changed".
 */

export type NodeReport = { state: string; reason: string };
export type RunReport = Record<string, NodeReport>;

/** A short badge for one node: "cached", "new", "forced", "seed changed", "steps, cfg changed". */
export function badgeText(report: NodeReport): string {
  if (report.state === "cached") return "cached";
  if (report.state === "skipped") return "not needed";
  const reason = report.reason.trim();
  const inputs = /^inputs? (.+) changed$/.exec(reason);
  if (inputs) {
    const names = inputs[1].split(/,\s*/);
    return names.length > 2 ? `${names.slice(0, 2).join(", ")} +${names.length - 2} changed` : `${names.join(", ")} changed`;
  }
  if (reason === "evicted from cache") return "evicted";
  return reason || "ran";
}

/** The badge's longer explanation (a tooltip). */
export function badgeTooltip(report: NodeReport): string {
  if (report.state === "cached") return "Served from the cache: nothing it depends on changed";
  if (report.state === "skipped") return "Not needed by any output of this run";
  return `Ran: ${report.reason || "no reason given"}`;
}

/** One line per run for the queue history: "2 ran (seed changed, new) · 5 cached". */
export function summarize(report: RunReport | undefined | null): string {
  const entries = Object.values(report ?? {});
  if (!entries.length) return "";
  const ran = entries.filter((r) => r.state === "ran");
  const cached = entries.filter((r) => r.state === "cached").length;
  const parts: string[] = [];
  if (ran.length) {
    const reasons = [...new Set(ran.map(badgeText))];
    const shown = reasons.slice(0, 3).join(", ") + (reasons.length > 3 ? ", …" : "");
    parts.push(`${ran.length} ran (${shown})`);
  } else parts.push("nothing ran");
  if (cached) parts.push(`${cached} cached`);
  return parts.join(" · ");
}
