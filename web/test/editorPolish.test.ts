import assert from "node:assert/strict";
import { test } from "node:test";
import { formatDuration, jobMeta, jobSeconds, jobState } from "../src/model/jobInfo";
import { badgeText, badgeTooltip, summarize } from "../src/model/runReport";

test("run badges word the engine's reasons briefly", () => {
  assert.equal(badgeText({ state: "cached", reason: "cached" }), "cached");
  assert.equal(badgeText({ state: "ran", reason: "new" }), "new");
  assert.equal(badgeText({ state: "ran", reason: "forced" }), "forced");
  assert.equal(badgeText({ state: "ran", reason: "input seed changed" }), "seed changed");
  assert.equal(badgeText({ state: "ran", reason: "input steps, cfg changed" }), "steps, cfg changed");
  assert.equal(badgeText({ state: "ran", reason: "input a, b, c, d changed" }), "a, b +2 changed");
  assert.equal(badgeText({ state: "ran", reason: "evicted from cache" }), "evicted");
  assert.equal(badgeText({ state: "skipped", reason: "not needed" }), "not needed");
  assert.match(badgeTooltip({ state: "ran", reason: "input seed changed" }), /input seed changed/);
});

test("a run's summary counts ran and cached nodes with their reasons", () => {
  const report = {
    "1": { state: "cached", reason: "cached" },
    "2": { state: "cached", reason: "cached" },
    "3": { state: "ran", reason: "input seed changed" },
    "4": { state: "ran", reason: "new" },
    "5": { state: "ran", reason: "new" },
  };
  assert.equal(summarize(report), "3 ran (seed changed, new) · 2 cached");
  assert.equal(summarize({ "1": { state: "cached", reason: "cached" } }), "nothing ran · 1 cached");
  assert.equal(summarize({}), "");
  assert.equal(summarize(undefined), "");
});

test("history state: cancelled and interrupted are not errors", () => {
  const errorStatus = { status_str: "error", completed: false };
  assert.equal(jobState({ state: "cancelled" }, errorStatus), "cancelled");
  assert.equal(jobState({ state: "interrupted" }, errorStatus), "interrupted");
  assert.equal(jobState(undefined, errorStatus), "error");
  assert.equal(jobState(undefined, { completed: true }), "success");
});

test("durations and card meta", () => {
  assert.equal(formatDuration(0.84), "0.8 s");
  assert.equal(formatDuration(42.4), "42 s");
  assert.equal(formatDuration(125), "2 min 05 s");
  assert.equal(formatDuration(3720), "1 h 02 min");
  assert.equal(jobSeconds({ started_at: 100, finished_at: 103.5 }), 3.5);
  assert.equal(jobSeconds({ seconds: 2.25, started_at: 100, finished_at: 110 }), 2.25);
  const now = new Date(2026, 11, 4, 18, 0, 0);
  const finished = new Date(2026, 11, 4, 17, 5, 9).getTime() / 1000;
  assert.deepEqual(jobMeta(7, { finished_at: finished, seconds: 1.5, started_at: finished - 1.5 }, now), ["#7", "17:05:09", "1.5 s"]);
  // Cancelled before it started: no duration.
  assert.deepEqual(jobMeta(8, { finished_at: finished, started_at: null }, now), ["#8", "17:05:09"]);
  const yesterday = new Date(2026, 11, 3, 9, 1, 2).getTime() / 1000;
  assert.deepEqual(jobMeta(undefined, { finished_at: yesterday }, now), ["2026-12-03 09:01:02"]);
});
