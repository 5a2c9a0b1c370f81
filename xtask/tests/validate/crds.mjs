// Validates the custom resources Slipway renders (Argo CD Application and ApplicationSet, Argo Rollouts
// Rollout and AnalysisTemplate, Prometheus Operator PrometheusRule, Kyverno
// ImageValidatingPolicy) with the
// @kubernetes-models validators; kubernetes-validate only warns on CRDs. Every other kind
// is left to kubernetes-validate. Each PrometheusRule's spec also goes through `promtool
// check rules`. Usage: node crds.mjs FILE...; exits 1 naming each failure.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { Application, ApplicationSet } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import { AnalysisTemplate, Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { ImageValidatingPolicy } from "@kubernetes-models/kyverno/policies.kyverno.io/v1";

const models = {
  Application,
  ApplicationSet,
  AnalysisTemplate,
  Rollout,
  PrometheusRule,
  ImageValidatingPolicy,
};
let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) {
      console.error(`FAIL ${file}: not YAML: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const object = doc.toJS();
    const Model = models[object?.kind];
    if (!Model) continue;
    try {
      new Model(object).validate();
      if (object.kind === "PrometheusRule") {
        // promtool rejects the CRD wrapper: its spec is the rule file (JSON is YAML).
        const dir = mkdtempSync(join(tmpdir(), "rules-"));
        try {
          const rules = join(dir, "rules.yml");
          writeFileSync(rules, JSON.stringify(object.spec));
          execFileSync("promtool", ["check", "rules", rules], { stdio: ["ignore", "ignore", "pipe"] });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      checked++;
      console.log(`ok   ${file}: ${object.kind} ${object.metadata.name}`);
    } catch (error) {
      failed++;
      const detail = error.stderr ? error.stderr.toString() : error.message;
      console.error(`FAIL ${file}: ${object.kind} ${object.metadata?.name}: ${detail}`);
    }
  }
}
console.log(`${checked} custom resources valid, ${failed} failures`);
process.exit(failed > 0 ? 1 : 0);
