import { join } from "node:path";
import { GatewayFiles, secretsFolder, writeSecretFile } from "@jetmesh/access";
import {
  type ClientEntry,
  newApiKey,
  newIdSecretVersion,
  renderClientsFile,
  renderIdSecretsFile,
} from "@jetmesh/contracts";

/** The API client the mesh's traffic mints and reads balances with (an operator). */
export const MESH_OPERATOR = "mesh-operator";
/** The API client the mesh's traffic moves money with (a customer owning `acc-0` … `acc-999`). */
export const MESH_CUSTOMER = "mesh-customer";
/** Accounts the mesh's customer owns: the traffic generators' `acc-<n>`. */
export const MESH_CUSTOMER_ACCOUNTS = 1000;

/** API keys of the mesh's clients, in clear (they exist only in the runner's memory). */
export interface MeshApiKeys {
  readonly operator: string;
  readonly customer: string;
}

export interface GatewaySecrets {
  readonly clientsFile: string;
  readonly idSecretsFile: string;
  readonly apiKeys: MeshApiKeys;
  /** The clients allowed to mint (the checker's M1). */
  readonly minters: readonly string[];
}

/**
 * Writes the gateway's secrets for a mesh run into `out` (0700, outside any git work tree;
 * files 0600): a clients file with the operator and the customer the traffic uses (plus
 * `extraClients`, e.g. a test's attacker) and a fresh transfer-id secret. The keys are new on
 * every run.
 */
export function writeGatewaySecrets(out: string, extraClients: readonly ClientEntry[] = []): GatewaySecrets {
  const dir = secretsFolder(out, "the mesh's gateway secrets");
  const operator = newApiKey();
  const customer = newApiKey();
  const clients: ClientEntry[] = [
    {
      id: MESH_OPERATOR,
      role: "operator",
      accounts: ["*"],
      mintMaxMinor: 1_000_000_000_000,
      // The checker reads every balance through the API.
      rate: { perSecond: 10_000, burst: 20_000 },
      keys: [{ id: "mesh", sha256: operator.sha256 }],
    },
    {
      id: MESH_CUSTOMER,
      role: "customer",
      accounts: Array.from({ length: MESH_CUSTOMER_ACCOUNTS }, (_, i) => `acc-${i}`),
      rate: { perSecond: 10_000, burst: 20_000 },
      keys: [{ id: "mesh", sha256: customer.sha256 }],
    },
    ...extraClients,
  ];
  const clientsFile = join(dir, GatewayFiles.clients);
  const idSecretsFile = join(dir, GatewayFiles.idSecrets);
  writeSecretFile(clientsFile, renderClientsFile(clients));
  writeSecretFile(idSecretsFile, renderIdSecretsFile({ versions: [newIdSecretVersion(1, new Date(0))] }));
  return {
    clientsFile,
    idSecretsFile,
    apiKeys: { operator: operator.key, customer: customer.key },
    minters: clients.filter((c) => c.role === "operator").map((c) => c.id),
  };
}
