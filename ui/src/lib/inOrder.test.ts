import { describe, expect, it } from "vitest";
import { inOrder } from "./inOrder";

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("inOrder", () => {
  it("sends one change at a time, in order, and shows only the last answer", async () => {
    const sent: string[] = [];
    const answers = [deferred<string>(), deferred<string>(), deferred<string>()];
    const shown: string[] = [];
    const busy: boolean[] = [];
    const change = inOrder((v: string) => {
      sent.push(v);
      return answers[sent.length - 1].promise;
    }, {
      busy: (b) => busy.push(b),
      settled: (r) => shown.push(r),
      failed: () => {},
    });
    const revert = () => {};
    change("a", revert);
    change("b", revert);
    const last = change("c", revert);
    await Promise.resolve();
    expect(sent).toEqual(["a"]); // b waits for a's answer
    answers[0].resolve("A");
    answers[1].resolve("B");
    answers[2].resolve("C");
    await last;
    expect(sent).toEqual(["a", "b", "c"]);
    expect(shown).toEqual(["C"]);
    expect(busy[busy.length - 1]).toBe(false);
    expect(busy.slice(0, -1).every((b) => b)).toBe(true);
  });

  it("reports every failure and undoes it on screen only when nothing follows", async () => {
    const failures: [unknown, boolean][] = [];
    let reverted = 0;
    const change = inOrder(
      async (v: number) => {
        if (v < 0) throw new Error(`refused ${v}`);
        return v;
      },
      { busy: () => {}, settled: () => {}, failed: (e, revert) => {
        failures.push([e, revert !== null]);
        revert?.();
      } },
    );
    change(-1, () => (reverted += 1));
    await change(2, () => (reverted += 1));
    await change(-3, () => (reverted += 1));
    expect(failures.map(([e, last]) => [(e as Error).message, last])).toEqual([
      ["refused -1", false],
      ["refused -3", true],
    ]);
    expect(reverted).toBe(1);
  });
});
