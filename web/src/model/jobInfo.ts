/**
 * What a history card says about a finished job: its state as the server recorded it (a cancelled
 * job is "cancelled", not an error), when it ran and for how long. Pure: no DOM.
 */

/** Our `lg` block on a history entry (server/API.md). */
export interface JobLg {
  state?: string;
  reason?: string;
  seconds?: number;
  queued_at?: number | null;
  started_at?: number | null;
  finished_at?: number | null;
  run_report?: Record<string, { state: string; reason: string }>;
}

const STATES = new Set(["success", "error", "interrupted", "cancelled", "failed"]);

/** The job's end state; falls back to ComfyUI's status_str for servers without our block. */
export function jobState(lg: JobLg | undefined, status: { status_str?: string; completed?: boolean } | undefined): string {
  if (lg?.state && STATES.has(lg.state)) return lg.state;
  if (status?.status_str) return status.status_str;
  return status?.completed ? "success" : "unknown";
}

/** "0.8 s", "12 s", "2 min 05 s", "1 h 02 min". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** How long the job ran: the worker's own measure, else finished minus started. */
export function jobSeconds(lg: JobLg | undefined): number | null {
  if (typeof lg?.seconds === "number") return lg.seconds;
  if (typeof lg?.started_at === "number" && typeof lg.finished_at === "number") return Math.max(0, lg.finished_at - lg.started_at);
  return null;
}

/** Clock time the job finished (or was queued), "14:03:27", or with the date when not today. */
export function formatWhen(epochSeconds: number, now: Date = new Date()): string {
  const d = new Date(epochSeconds * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** The card's meta line parts: job number, finish time, duration. */
export function jobMeta(number: number | undefined, lg: JobLg | undefined, now?: Date): string[] {
  const parts: string[] = [];
  if (typeof number === "number") parts.push(`#${number}`);
  const when = lg?.finished_at ?? lg?.started_at ?? lg?.queued_at;
  if (typeof when === "number") parts.push(formatWhen(when, now));
  const secs = jobSeconds(lg);
  if (secs !== null && lg?.started_at !== null) parts.push(formatDuration(secs));
  return parts;
}
