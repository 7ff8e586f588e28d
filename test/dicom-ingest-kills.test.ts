/**
 * The SIGKILL durability test, first half: 10 kills at random moments while two STOW-RS clients post
 * requests of 1 to 20 instances and one storescu association streams C-STOREs. With the second half
 * (dicom-ingest-kills-concurrent.test.ts) that makes 20 kills; the loop is test/support/dicom/kill-loop.ts.
 */
import { describeKills } from './support/dicom/kill-loop.ts';

describeKills('DICOM ingest through 10 SIGKILLs at random moments: one association, STOW-RS batches', {
  kills: 10,
  stowClients: 2,
  stowBatchMax: 20,
  associations: 1,
});
