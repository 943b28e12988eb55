export { DEFAULT_BEHAVIOUR, createBank } from "./bank.ts";
export type { Bank, BankAnswer, BankBehaviour, Payout, PayoutRequest } from "./bank.ts";
export { loadConfig } from "./config.ts";
export type { BankSimConfig } from "./config.ts";
export { startBankSim } from "./server.ts";
export type { BankSimHandle, StartBankSimOptions } from "./server.ts";
