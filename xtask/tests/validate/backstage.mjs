// Validates Backstage catalog-info.yaml files with npm's @backstage/catalog-model, the
// validators Backstage's own catalog runs: the entity policies (namespace, field formats,
// no foreign root fields, the entity schema) and the Component kind's schema.
// Usage: node backstage.mjs FILE...; exits 1 naming the first file that fails.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import {
  DefaultNamespaceEntityPolicy,
  EntityPolicies,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
  componentEntityV1alpha1Validator,
} from '@backstage/catalog-model';

const policy = EntityPolicies.allOf([
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
  new SchemaValidEntityPolicy(),
]);
for (const file of process.argv.slice(2)) {
  const entity = parse(readFileSync(file, 'utf8'));
  try {
    const enforced = await policy.enforce(entity);
    if (!(await componentEntityV1alpha1Validator.check(enforced))) {
      throw new Error('not a Component entity');
    }
  } catch (error) {
    console.error(`${file}: ${error.message}`);
    process.exit(1);
  }
  console.log(`${file}: valid ${entity.kind} ${entity.metadata.name}`);
}
