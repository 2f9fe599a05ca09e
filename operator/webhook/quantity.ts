// Moved to common/kube/quantity.ts (the agent parses quantities too); this re-export keeps old imports working.
export * from '../../common/kube/quantity.ts';
