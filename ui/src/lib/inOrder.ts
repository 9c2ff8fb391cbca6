import { reportError } from "./errors.svelte";
import { setStatus } from "./state.svelte";
import type { AppStatus } from "../bindings";

// Changes a control sends to the engine, one after the other in the order
// they were made, while the control stays enabled (disabling a focused
// control throws a keyboard user's focus away). Only the answer to the last
// change pending is shown, so arrowing through a list ends on the choice
// last shown; a failure is always reported, and undone on screen only when
// no later change is on its way.

export interface InOrderHandlers<R> {
  /** true while any change is on its way */
  busy: (busy: boolean) => void;
  /** the engine's answer to the last change pending */
  settled: (result: R) => void;
  /** a change failed; `revert` is given only when it was the last pending */
  failed: (error: unknown, revert: (() => void) | null) => void;
}

/** Returns `change(value, revert)`: sends `value` after the changes before it. */
export function inOrder<T, R>(
  send: (value: T) => Promise<R>,
  on: InOrderHandlers<R>,
): (value: T, revert: () => void) => Promise<void> {
  let queue: Promise<void> = Promise.resolve();
  let pending = 0;
  return (value, revert) => {
    pending += 1;
    on.busy(true);
    queue = queue.then(async () => {
      try {
        const result = await send(value);
        if (pending === 1) on.settled(result);
      } catch (error) {
        on.failed(error, pending === 1 ? revert : null);
      } finally {
        pending -= 1;
        on.busy(pending > 0);
      }
    });
    return queue;
  };
}

/**
 * A route-like setting: the engine answers with the new status, which is
 * shown; a failure is reported and, with nothing after it, undone on screen.
 */
export function statusChanges<T>(
  send: (value: T) => Promise<AppStatus>,
  busy: (busy: boolean) => void,
): (value: T, revert: () => void) => Promise<void> {
  return inOrder(send, {
    busy,
    settled: setStatus,
    failed: (error, revert) => {
      reportError(error);
      revert?.();
    },
  });
}
