// Hindsight's service worker: keeps the app shell cached so a board opens, and takes edits,
// without a network. The board's data lives in IndexedDB (client-wasm/src/storage.rs).
// The server's build script fills in @@VERSION@@ and @@ASSETS@@ (the content-hashed files).
const VERSION = "@@VERSION@@";
const ASSETS = @@ASSETS@@;
const CACHE = `hindsight-${VERSION}`;
const SHELL = "/";

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll([SHELL, ...ASSETS]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("hindsight-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && (url.pathname === "/" || url.pathname.startsWith("/b/"))) {
    // Network first, so a new version shows at once; the cached shell when the server is out of reach.
    event.respondWith(fetch(request).catch(() => caches.match(SHELL)));
  } else if (url.pathname.startsWith("/assets/")) {
    // Content-hashed: a cached copy is always right.
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
  }
});
