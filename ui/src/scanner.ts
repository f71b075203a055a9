// Reading a Tidings code (contact, link or security code) from a QR picture, a pasted
// screenshot or the camera; the Rust side finds the code in the picture. Used by the
// contacts dialog, a contact's security code screen and the sign-in screen's "link to a
// device I already use".

import { errorText, isAppError } from "./api";
import { fill, h } from "./dom";

/** What the scanner asks of its screen. */
export interface ScannerOptions<T> {
  /** Ids of the picture button, its file input and the camera button (for tests). */
  ids: { pick: string; file: string; camera: string };
  /** Where progress and failures are said (role=alert). */
  status: HTMLElement;
  /** What is said while a code is being used ("Adding…"). */
  busy: string;
  /** Uses the code in a picture; rejects with an AppError (`no_code`: none in it). */
  scan: (image: Blob) => Promise<T>;
  /** The code was used: what the screen does next. */
  found: (result: T) => void | Promise<void>;
  /** Whether the screen is still there (a camera that opens later is closed at once). */
  alive: () => boolean;
  /** A code was read but could not be used (said in the status already). */
  failed?: (e: unknown) => void;
}

/** Failures that are a security warning, not a mistake: the status shows them as one. */
const WARNINGS = new Set(["key_mismatch", "security_code_mismatch"]);

/** The scanner's parts, for the screen to lay out. */
export interface Scanner<T> {
  /** "Scan a QR picture…" (with its hidden file input) and "Use the camera". */
  buttons: HTMLElement;
  /** The camera's picture, shown while it runs. */
  video: HTMLVideoElement;
  /** Uses a code read another way (pasted text): same status and next step. */
  attempt: (result: Promise<T>) => Promise<void>;
  /** Takes a screenshot pasted anywhere in `target`. */
  takePastes: (target: HTMLElement) => void;
  /** Turns the camera off. */
  stop: () => void;
}

/** The QR picture, file, paste and camera ways to a code, sharing one status line. */
export function scanner<T>(o: ScannerOptions<T>): Scanner<T> {
  const file = h("input", { type: "file", accept: "image/*", id: o.ids.file, class: "visually-hidden" });
  // A button opens the hidden file input, so keyboard users reach it.
  const pick = h("button", { type: "button", id: o.ids.pick, onclick: () => file.click() }, "Scan a QR picture…");
  const camera = h("button", { type: "button", id: o.ids.camera }, "Use the camera");
  const video = h("video", { class: "camera", autoplay: true, muted: true, playsinline: true, hidden: true, "aria-label": "Camera" });

  let stream: MediaStream | null = null;
  let timer: number | undefined;
  const stop = () => {
    window.clearInterval(timer);
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    video.hidden = true;
  };
  const say = (text: string, warning = false) => {
    o.status.textContent = text;
    o.status.classList.toggle("security-warning", warning);
  };
  const fail = (e: unknown) => {
    say(errorText(e), isAppError(e) && WARNINGS.has(e.code));
    o.failed?.(e);
  };
  const attempt = async (result: Promise<T>) => {
    say(o.busy);
    try {
      const r = await result;
      say("");
      stop();
      await o.found(r);
    } catch (e) {
      fail(e);
    }
  };
  file.addEventListener("change", () => {
    const f = file.files?.[0];
    if (f) void attempt(o.scan(f));
    file.value = "";
  });
  const takePastes = (target: HTMLElement) => target.addEventListener("paste", (ev: ClipboardEvent) => {
    const item = [...(ev.clipboardData?.items ?? [])].find((i) => i.type.startsWith("image/"));
    const blob = item?.getAsFile();
    if (blob) {
      ev.preventDefault();
      void attempt(o.scan(blob));
    }
  });

  if (!navigator.mediaDevices?.getUserMedia) camera.hidden = true;
  camera.addEventListener("click", async () => {
    try {
      const got = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      if (!o.alive()) {
        got.getTracks().forEach((t) => t.stop());
        return;
      }
      stop();
      stream = got;
      video.srcObject = stream;
      video.hidden = false;
      say("Point the camera at a Tidings QR code.");
      let busy = false;
      timer = window.setInterval(async () => {
        if (busy || video.videoWidth === 0) return;
        busy = true;
        const canvas = document.createElement("canvas");
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        canvas.getContext("2d")?.drawImage(video, 0, 0);
        const blob = await new Promise<Blob | null>((r) => canvas.toBlob(r, "image/png"));
        try {
          if (blob) {
            const r = await o.scan(blob);
            stop();
            say("");
            await o.found(r);
          }
        } catch (e) {
          // No code in this frame yet: keep looking. Anything else (a code for another
          // server, an expired one) is the answer: say it and stop.
          if (!(isAppError(e) && e.code === "no_code")) {
            stop();
            fail(e);
          }
        } finally {
          busy = false;
        }
      }, 700);
    } catch {
      say("The camera is not available here; use a picture instead.");
      camera.hidden = true;
    }
  });

  const buttons = h("div", { class: "row" }, pick, file, camera);
  return { buttons, video, attempt, takePastes, stop };
}

/** Shows an SVG document (a QR code) inside `box`. */
export function showSvg(box: HTMLElement, svg: string): void {
  const doc = new DOMParser().parseFromString(svg, "image/svg+xml").documentElement;
  fill(box, document.importNode(doc, true));
}
