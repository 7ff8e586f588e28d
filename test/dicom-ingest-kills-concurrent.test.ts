/**
 * The SIGKILL durability test, second half: 10 more kills at random moments, now with three storescu
 * associations at once (their instances commit in groups) and three STOW-RS clients posting one
 * instance per request. With dicom-ingest-kills.test.ts that makes 20 kills.
 */
import { describeKills } from './support/dicom/kill-loop.ts';

describeKills('DICOM ingest through 10 SIGKILLs at random moments: concurrent associations, STOW-RS one by one', {
  kills: 10,
  stowClients: 3,
  stowBatchMax: 1,
  associations: 3,
});
