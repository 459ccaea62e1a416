// Each artcloak seed starts at the "control after generate" mode its node asks for ("fixed":
// the same inputs protect the same way). ComfyUI's editor up to at least frontend 1.35 (the
// one ComfyUI 0.8 ships) starts every seed control at "randomize" whatever the node asks.
// A workflow saved from the editor keeps the mode its user chose.
import { app } from "../../scripts/app.js";

const PACK = "artcloak.";

function askedModes(nodeData) {
  const inputs = { ...nodeData.input?.required, ...nodeData.input?.optional };
  return Object.entries(inputs)
    .map(([name, spec]) => [name, spec?.[1]?.control_after_generate])
    .filter(([, mode]) => typeof mode === "string");
}

app.registerExtension({
  name: "artcloak.SeedControl",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.name?.startsWith(PACK)) return;
    const modes = askedModes(nodeData);
    if (!modes.length) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = created?.apply(this, args);
      for (const [name, mode] of modes) {
        const control = this.widgets?.find((widget) => widget.name === name)?.linkedWidgets?.[0];
        if (control) control.value = mode;
      }
      return result;
    };
  },
});
