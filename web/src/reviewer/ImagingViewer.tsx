/**
 * The case's imaging: its studies (ImagingStudy resources matched to the request), each series with
 * a thumbnail, and the chosen series scrolled in FrameViewer. Where the site runs OHIF
 * (OHIF_VIEWER_URL), each study also opens there.
 */
import { Anchor, Badge, Group, Loader, Stack, Text, UnstyledButton } from '@mantine/core';
import type { ImagingStudy, ImagingStudySeries } from '@medplum/fhirtypes';
import { useState } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { formatDateTime } from '../format.ts';
import { FetchedImage } from '../viewers/FetchedImage.tsx';
import { useStudies } from './case-data.ts';
import { FrameViewer } from './FrameViewer.tsx';
import { ohifLink, useHubSettings } from './settings.ts';
import './reviewer.css';

const enc = encodeURIComponent;

export function studyUidOf(study: ImagingStudy): string | undefined {
  const value = study.identifier?.find((identifier) => identifier.system === 'urn:dicom:uid')?.value;
  return value?.replace(/^urn:oid:/, '');
}

function seriesLabel(series: ImagingStudySeries, index: number): string {
  const number = series.number ?? index + 1;
  return `Series ${number}${series.description ? `: ${series.description}` : ''}`;
}

function SeriesList({
  studyUid,
  series,
  selected,
  onSelect,
}: {
  studyUid: string;
  series: ImagingStudySeries[];
  selected: string | undefined;
  onSelect: (uid: string) => void;
}) {
  return (
    <nav aria-label="Series" className="series-list">
      {series.map((item, index) => (
        <UnstyledButton
          key={item.uid}
          className="series-button"
          aria-pressed={item.uid === selected}
          onClick={() => onSelect(item.uid)}
          data-testid="series-button"
          data-series={item.uid}
        >
          <FetchedImage
            path={`/dicomweb/studies/${enc(studyUid)}/series/${enc(item.uid)}/thumbnail?viewport=96,96`}
            alt={`Thumbnail of ${seriesLabel(item, index)}`}
            width={96}
          />
          <Text size="sm" fw={item.uid === selected ? 700 : 400}>
            {seriesLabel(item, index)}
          </Text>
          <Text size="xs" c="dimmed">
            {item.modality?.code ?? ''} · {item.numberOfInstances ?? item.instance?.length ?? 0} image
            {(item.numberOfInstances ?? item.instance?.length ?? 0) === 1 ? '' : 's'}
          </Text>
        </UnstyledButton>
      ))}
    </nav>
  );
}

function StudyView({ study, ohifViewerUrl }: { study: ImagingStudy; ohifViewerUrl: string | null }) {
  const uid = studyUidOf(study);
  const series = [...(study.series ?? [])].sort((a, b) => (a.number ?? 0) - (b.number ?? 0));
  const [selected, setSelected] = useState(series[0]?.uid);
  const current = series.find((item) => item.uid === selected);
  if (uid === undefined) {
    return <Text c="dimmed">This study has no Study Instance UID.</Text>;
  }
  const ohif = ohifViewerUrl === null ? undefined : ohifLink(ohifViewerUrl, uid);
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Group gap="xs">
          <Text fw={600}>{study.description ?? 'Imaging study'}</Text>
          {(study.modality ?? []).map((modality) => (
            <Badge key={modality.code} variant="light">
              {modality.code}
            </Badge>
          ))}
          <Text size="sm" c="dimmed">
            {study.started ? formatDateTime(study.started) : ''}
          </Text>
        </Group>
        {ohif === undefined ? null : (
          <Anchor href={ohif} target="_blank" rel="noopener noreferrer" data-testid="ohif-link">
            Open in OHIF
          </Anchor>
        )}
      </Group>
      <div className="viewer-layout">
        <SeriesList studyUid={uid} series={series} selected={selected} onSelect={setSelected} />
        <div>
          {current === undefined ? (
            <Text c="dimmed">Choose a series.</Text>
          ) : (
            <FrameViewer
              key={current.uid}
              studyUid={uid}
              seriesUid={current.uid}
              seriesLabel={seriesLabel(current, series.indexOf(current))}
            />
          )}
        </div>
      </div>
    </Stack>
  );
}

export function ImagingViewer({ caseId }: { caseId: string }) {
  const settings = useHubSettings();
  const studies = useStudies(caseId);
  const [chosen, setChosen] = useState<string>();
  if (studies.error) {
    return <ErrorAlert error={studies.error} title="The imaging could not be read" />;
  }
  if (studies.isPending) {
    return <Loader size="sm" aria-label="Loading the imaging" />;
  }
  if (studies.data.length === 0) {
    return <Text c="dimmed">No imaging has arrived for this case.</Text>;
  }
  const study = studies.data.find((candidate) => candidate.id === chosen) ?? studies.data[0];
  return (
    <Stack>
      {studies.data.length > 1 ? (
        <Group gap="xs" role="group" aria-label="Studies">
          {studies.data.map((candidate, index) => (
            <UnstyledButton
              key={candidate.id}
              className="study-button"
              aria-pressed={candidate.id === study?.id}
              onClick={() => setChosen(candidate.id)}
            >
              {candidate.description ?? `Study ${index + 1}`} (
              {(candidate.modality ?? []).map((m) => m.code).join(', ')})
            </UnstyledButton>
          ))}
        </Group>
      ) : null}
      {study === undefined ? null : (
        <StudyView key={study.id} study={study} ohifViewerUrl={settings.data?.ohifViewerUrl ?? null} />
      )}
    </Stack>
  );
}
