import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import ConfirmButton from "./ConfirmButton.svelte";

describe("ConfirmButton", () => {
  it("moves the keyboard to the question and back", async () => {
    const onconfirm = vi.fn();
    render(ConfirmButton, { label: "Clear cache", question: "Delete?", confirmLabel: "Clear cache", testid: "c", onconfirm });
    await fireEvent.click(screen.getByTestId("c"));
    await waitFor(() => expect(screen.getByTestId("c-confirm")).toHaveFocus());
    await fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(screen.getByTestId("c")).toHaveFocus());
    expect(onconfirm).not.toHaveBeenCalled();
    await fireEvent.click(screen.getByTestId("c"));
    await fireEvent.click(await screen.findByTestId("c-confirm"));
    await waitFor(() => expect(screen.getByTestId("c")).toHaveFocus());
    expect(onconfirm).toHaveBeenCalledOnce();
  });
});
