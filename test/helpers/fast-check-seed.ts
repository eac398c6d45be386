/**
 * Preloaded into every test process (`node --test --import`). On CI the property tests run with
 * a fixed seed, so that a landing never depends on the luck of the draw; elsewhere fast-check
 * draws a new seed each run, to keep exploring. `FC_SEED=n` forces a seed anywhere, to replay a
 * failure (fast-check prints the seed of every failure it finds).
 */
import fc from "fast-check";

const forced = process.env["FC_SEED"];
const seed = forced !== undefined && forced !== "" ? Number(forced) : process.env["CI"] ? 0x5eed_2026 : undefined;
if (seed !== undefined && Number.isInteger(seed)) fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });
