/**
 * Nix for nixos-vm-validate: install and configure Nix, KVM access, emulation (binfmt), the
 * store cache, Cachix, and building the VM runner from the user's flake.
 *
 * Everything that decides is a pure function returning data (argv arrays, file contents);
 * everything that acts takes an `Executor` (spawnExecutor() in production, a recorder in tests).
 * No command is ever a shell string; tokens are listed as `secrets` and printed as ***.
 *
 * The action's sequence (all names exported below):
 *
 *   const exec = spawnExecutor()
 *   const facts = await gatherHostFacts(exec)                       // read-only
 *   const target = parseFlakeTarget(inputs.flake, { configuration: inputs.configuration,
 *                                                   cwd: process.env.GITHUB_WORKSPACE })
 *   // 1. KVM (before Nix: nix-daemon build users drop groups; the rule opens /dev/kvm to all)
 *   const kvm = await ensureKvmAccess(facts, { exec, log })        // never throws
 *   // 2. emulation (aarch64 guest on x86_64): binfmt F + extra-platforms/extra-sandbox-paths
 *   const emulation = await ensureEmulation(planEmulation(system, facts.hostSystem, facts.binfmt, facts.uid), { exec, log })
 *   // 3. Cachix public key (input, else Cachix API) and Nix itself
 *   const workDir = nixWorkDir(facts.runnerTemp)
 *   const cachix = inputs.cachixCache ? await resolveCachix({ name, authToken, extraTrustedPublicKeys }, { workDir, uid: facts.uid }) : undefined
 *   //    (log cachix.warning; run cachix.commands with runCommands before setupNix)
 *   const setupInput = { installerVersion, extraSubstituters, extraTrustedPublicKeys,
 *                        cachix: cachix?.settings, githubToken, emulation }
 *   const nix = await setupNix(planNixSetup(setupInput, facts), { exec, log })
 *   //    then core.addPath(p) for p of nix.path (later steps), nix.summary for the summary
 *   // 4. store cache (cache input true)
 *   const id = await flakeCacheIdentity(target, { exec, log, options: nixRunOptions(facts) })
 *   const keys = storeCacheKeys({ guest: system, host: facts.hostSystem, configuration: target.configuration, ...id })
 *   const dir = storeCacheDir(facts.home)  // @actions/cache is given STORE_CACHE_PATH (~/…)
 *   const restored = await restoreStoreCache({ keys, dir, client: actionsCacheClient(), log })
 *   // 5. ephemeral key + build (core.startGroup('Build'), onLine: core.info)
 *   const key = await createEphemeralKey(workDir)                   // { privateKeyPath, publicKey }
 *   const built = await buildRunner({ target, system, sshUser, sshPublicKey: key.publicKey, workDir,
 *       outDir, hostSystem: facts.hostSystem, emulation: emulation.settings,
 *       extraSubstituters: restored.hit === 'miss' || restored.hit === 'error' ? [] : [localSubstituter(dir)],
 *       onLine: (l) => core.info(l), signal })
 *   //    throws ValidationFailure 'build-failed' (details.file/line repository-relative, details.logFile)
 *   //    → writeBuildFailureReport({ outDir, system, configuration, failure, buildMs, startedAt })
 *   // 6. validate({ runner: built.runner, sshKey: key.privateKeyPath, buildMs: built.buildMs, startedAt, ... })
 *   //    then listBuildLog(outDir, report) to list build.log among the artifacts
 *   // 7. after the run: saveStoreCache({ restored, storePath: built.storePath, client, exec, log })
 *   //    → StoreCacheResult { hit, restoredKey, restoredBytes, saved, savedBytes, message } for the summary;
 *   //    on success with a token: pushToCachix({ name, authToken, storePath: built.storePath, workDir, exec, log })
 *   // dry-run: nixPlanSections({ frontEnd: 'action', target, system, sshUser, facts, setup: setupInput,
 *   //          cache: { keys, dir }, cachix: { name, push }, workDir, outDir }) → renderPlan({ sections })
 */
export { actionsCacheClient } from './actions-cache.js'
export {
  binfmtEntryName,
  binfmtRegistration,
  ensureEmulation,
  parseBinfmtEntry,
  planEmulation,
  staticInterpreter,
  type BinfmtEntry,
  type BinfmtFacts,
  type EmulationPlan
} from './binfmt.js'
export {
  buildRunner,
  packagePathResolver,
  findRunner,
  parseBuildJson,
  type BuildRunnerInput,
  type BuildRunnerResult
} from './build.js'
export {
  dirBytes,
  exportClosureCommand,
  closureCoverage,
  closureInfoCommand,
  flakeCacheIdentity,
  flakeMetadataCommand,
  lockedInputsHash,
  parseClosureInfo,
  sourceHash,
  isCacheConflict,
  localSubstituter,
  restoreStoreCache,
  saveStoreCache,
  storeCacheDir,
  STORE_CACHE_PATH,
  storeCacheKeys,
  type CacheClient,
  type StoreCacheKeys,
  type StoreCacheResult
} from './cache.js'
export {
  cachixInstallCommand,
  cachixPushCommand,
  pushToCachix,
  resolveCachix,
  validateCachixName,
  type CachixInput,
  type CachixPushResult,
  type CachixResolution
} from './cachix.js'
export {
  DEFAULT_SUBSTITUTER,
  DEFAULT_TRUSTED_PUBLIC_KEY,
  NIX_FEATURES,
  nixConfLines,
  renderConf,
  splitList,
  withManagedBlock,
  type CachixSettings,
  type ConfLine,
  type ConfMode,
  type NixConf
} from './conf.js'
export { summarizeNixError, findPositions, mapPosition, type NixErrorSummary } from './errors.js'
export {
  asRoot,
  lastLines,
  redact,
  renderCommand,
  runCommands,
  runFileWrite,
  spawnExecutor,
  writeFileStep,
  type Command,
  type FileWrite,
  type Step,
  type ExecOptions,
  type ExecResult,
  type Executor
} from './exec.js'
export { BUILD_EXPRESSION, nixBuildArgv, validationModuleText } from './expr.js'
export {
  findOnPath,
  gatherHostFacts,
  nixRunOptions,
  userConfPath,
  type HostFacts
} from './facts.js'
export { gitTopLevel, parseFlakeTarget, type FlakeTarget } from './flakeref.js'
export {
  DEFAULT_NIX_VERSION,
  installerUrl,
  nixWorkDir,
  planNixSetup,
  setupNix,
  type NixSetupInput,
  type NixSetupPlan,
  type NixSetupResult
} from './install.js'
export {
  KVM_RULE_PATH,
  KVM_UDEV_RULE,
  ensureKvmAccess,
  planKvmAccess,
  type KvmPlan,
  type KvmResult
} from './kvm.js'
export { emulationFor, nixPlanSections, type NixPlanInput, type PlanSection } from './plan.js'
export { listBuildLog, writeBuildFailureReport } from './report.js'
export { createEphemeralKey, publicKeyOf, type EphemeralKey } from './sshkey.js'
