// The error banner's list. Every failed command lands here with its message;
// nothing is swallowed. The user dismisses each one.
import { toAppError } from "./api";
import type { AppError } from "../bindings";

export interface ShownError extends AppError {
  id: number;
  /** How many times the same message came again later (shown as "×3"). */
  count: number;
  /** when it last came, unix ms */
  last: number;
}

/** Repeats closer together than this are one burst (several commands failing at once). */
const BURST_MS = 1500;

let nextId = 1;

class ErrorList {
  list = $state<ShownError[]>([]);
}

export const errors = new ErrorList();

/** Shows the error to the user; returns it as an AppError. */
export function reportError(e: unknown): AppError {
  const err = toAppError(e);
  const now = Date.now();
  const same = errors.list.find((x) => x.message === err.message && x.kind === err.kind);
  if (same) {
    if (now - same.last > BURST_MS) same.count += 1;
    same.last = now;
  } else {
    errors.list.push({ ...err, id: nextId++, count: 1, last: now });
  }
  return err;
}

export function dismissError(id: number): void {
  errors.list = errors.list.filter((e) => e.id !== id);
}

export function clearErrors(): void {
  errors.list = [];
}
