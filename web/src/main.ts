/** Entry point: start the editor and expose it as window.app for scripting and tests. */
import "@comfyorg/litegraph/style.css";
import { App } from "./app";

declare global {
  interface Window {
    app: App;
  }
}

const app = new App();
window.app = app;
void app.start(document.getElementById("app")!).catch((e: unknown) => {
  console.error(e);
  document.body.dataset.ready = "error";
});
