import { afterEach, describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/svelte";
import { flushSync } from "svelte";
import ErrorBanner from "./ErrorBanner.svelte";
import { clearErrors, reportError } from "../lib/errors.svelte";
import { setLanguage } from "../i18n/index.svelte";

afterEach(() => {
  clearErrors();
  setLanguage("system");
});

describe("ErrorBanner", () => {
  it("says what failed in the user's language before the engine's own sentence", () => {
    setLanguage("zh-CN");
    render(ErrorBanner);
    flushSync(() => {
      reportError({ kind: "keyring", message: "The keyring is locked: unlock it and try again." });
    });
    expect(screen.getByTestId("error-kind")).toHaveTextContent("密钥环");
    expect(screen.getByTestId("error-message")).toHaveTextContent("The keyring is locked");

    flushSync(() => setLanguage("en"));
    expect(screen.getByTestId("error-kind")).toHaveTextContent("Keyring");
  });
});
