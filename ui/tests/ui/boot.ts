import { install } from "./mock-backend";

install(new URLSearchParams(location.search).get("scenario") ?? "signed-in");
await import("../../src/main");
