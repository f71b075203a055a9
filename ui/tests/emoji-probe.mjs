// Shared by the UI tests (Chromium) and the end-to-end test (the app's own web view).

/** How many clearly coloured pixels 🎉 has when drawn in black in the UI's own font stack:
 * none for an empty box or a monochrome glyph. Runs in the page. */
export async function emojiColourPixels() {
  const font = `32px ${getComputedStyle(document.documentElement).fontFamily}`;
  await document.fonts.load(font, "🎉");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 48;
  const ctx = canvas.getContext("2d");
  ctx.font = font;
  ctx.textBaseline = "top";
  ctx.fillStyle = "#000";
  ctx.fillText("🎉", 4, 4);
  const px = ctx.getImageData(0, 0, 48, 48).data;
  let coloured = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] > 128 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 60) coloured++;
  }
  return coloured;
}
