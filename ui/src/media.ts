// Pictures in chats: the blurhash placeholder at once, then the thumbnail from the profile,
// then (on click) the full image, downloaded by the core on demand. Object URLs are cached
// per message.

import { decode } from "blurhash";
import { api } from "./api";
import { placeholderSize } from "./format";

const thumbs = new Map<string, Promise<string>>();

/** A data URL painting the blurhash placeholder (small; the browser scales it up). */
export function placeholder(hash: string, width: number, height: number): string | null {
  try {
    const { w, h: hgt } = placeholderSize(width, height);
    const pixels = decode(hash, w, hgt);
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = hgt;
    const ctx = canvas.getContext("2d");
    if (!ctx) return null;
    const img = ctx.createImageData(w, hgt);
    img.data.set(pixels);
    ctx.putImageData(img, 0, 0);
    return canvas.toDataURL();
  } catch {
    return null;
  }
}

/** The thumbnail's object URL (JPEG from the store; no network). */
export function thumbnailUrl(room: number, seq: number): Promise<string> {
  const key = `${room}:${seq}`;
  let url = thumbs.get(key);
  if (!url) {
    url = api.thumbnail(room, seq).then((buf) => URL.createObjectURL(new Blob([buf], { type: "image/jpeg" })));
    url.catch(() => thumbs.delete(key));
    thumbs.set(key, url);
  }
  return url;
}

/** The full image's object URL (downloaded now if not cached). */
export async function fullUrl(room: number, seq: number, mime: string): Promise<string> {
  const buf = await api.fullImage(room, seq);
  return URL.createObjectURL(new Blob([buf], { type: mime }));
}
