export type {
  NetflowDirection,
  NetflowDrops,
  NetflowEndpoint,
  NetflowEndReason,
  NetflowRecord,
} from "./src/record.ts";
