// What renovate.json5's packageRules decide for each extracted dependency,
// computed by Renovate's own code (the functions its lookup stage calls),
// without any lookup: the extract mode stops before package rules apply.
//
// Usage: node rules.js CONFIG < deps.json > decisions.json
//   deps.json: [{manager, packageFile, depName, packageName, datasource,
//                currentValue}, ...]
//   decisions.json: for each dep, in order, for each update type of
//     UPDATE_TYPES (pinDigest: a digest added where there is none):
//     {enabled, groupName, dependencyDashboardApproval,
//                    schedule, allowedVersions}
// Reads nothing but CONFIG and Renovate's built-in presets; no network.
'use strict';

const fs = require('node:fs');
const JSON5 = require('json5');
const { getManagerConfig } = require('renovate/dist/config');
const { getConfig } = require('renovate/dist/config/defaults');
const { resolveConfigPresets } = require('renovate/dist/config/presets');
const { mergeChildConfig } = require('renovate/dist/config/utils');
const { applyPackageRules } = require('renovate/dist/util/package-rules');

const UPDATE_TYPES = ['patch', 'minor', 'major', 'digest', 'pinDigest'];

async function main() {
  const repoConfig = JSON5.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const config = mergeChildConfig(getConfig(), await resolveConfigPresets(repoConfig));
  const deps = JSON.parse(fs.readFileSync(0, 'utf8'));
  const decisions = [];
  for (const dep of deps) {
    const fileConfig = mergeChildConfig(getManagerConfig(config, dep.manager), {
      packageFile: dep.packageFile,
    });
    const byType = {};
    for (const updateType of UPDATE_TYPES) {
      const depConfig = await applyPackageRules(
        mergeChildConfig(fileConfig, { ...dep, updateType }),
        'pre-lookup',
      );
      byType[updateType] = {
        enabled: depConfig.enabled !== false,
        groupName: depConfig.groupName ?? null,
        dependencyDashboardApproval: depConfig.dependencyDashboardApproval === true,
        schedule: depConfig.schedule ?? [],
        allowedVersions: depConfig.allowedVersions ?? null,
      };
    }
    decisions.push(byType);
  }
  process.stdout.write(JSON.stringify(decisions));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
