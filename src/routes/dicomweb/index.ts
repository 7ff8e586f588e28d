/**
 * DICOMweb (PS3.18) under /dicomweb: STOW-RS (stow.ts), QIDO-RS (qido.ts) and WADO-RS (wado.ts,
 * bulkdata.ts, rendered.ts), on the same index and storage area as the DIMSE listener. What a
 * person sees is filtered, and every request audited, as access.ts describes.
 */
import express from 'express';
import type { Router } from 'express';
import type { Logger } from 'pino';
import type { Auditor } from '../../audit/auditor.ts';
import type { IngestContext } from '../../dicom/ingest.ts';
import { registerStowRoutes } from './stow.ts';
import type { PersonStowQuota } from './stow-quota.ts';
import { createQidoRoutes } from './qido.ts';
import { createWadoRoutes } from './wado.ts';
import { createBulkdataRoutes } from './bulkdata.ts';
import { createRenderedRoutes } from './rendered.ts';

export interface DicomwebOptions {
  ingest: IngestContext;
  /** The hub's public base URL; DICOMweb is at `${baseUrl}/dicomweb`. */
  baseUrl: string;
  /** Where uploaded parts are spooled before ingest (under DATA_DIR). */
  tempDir: string;
  logger: Logger;
  /** Audits every request (access.ts); the refusals before the routes through dicomwebAuditTrail. */
  auditor?: Auditor | undefined;
  /** A person's daily STOW-RS bytes (DICOM_PERSON_DAILY_BYTES); undefined: no limit. */
  personQuota?: PersonStowQuota | undefined;
}

export function createDicomwebRoutes(options: DicomwebOptions): Router {
  const routes = express.Router();
  registerStowRoutes(routes, options);
  routes.use(createQidoRoutes(options));
  routes.use(createWadoRoutes(options));
  routes.use(createBulkdataRoutes(options));
  routes.use(createRenderedRoutes(options));
  return routes;
}
