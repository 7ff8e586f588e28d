/**
 * One series on screen: its frames in order (every frame of every instance), scrolled with the mouse
 * wheel, the arrow keys (Page Up/Down by ten, Home/End) or the slider, and shown through the hub's
 * WADO-RS rendering (`…/frames/{n}/rendered`) with the window chosen here: the images' own, a CT
 * preset, or a center and width typed in or dragged with the mouse on the image (across: width; up
 * and down: center).
 */
import { Alert, Button, Group, Loader, NativeSelect, NumberInput, Slider, Stack, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import type { KeyboardEvent, PointerEvent } from 'react';
import { ErrorAlert } from '../ErrorAlert.tsx';
import { apiErrorOf, hubFetch } from '../fhir.ts';
import { seriesFrames, seriesInstances } from './dicom-json.ts';
import type { SeriesFrame } from './dicom-json.ts';
import { useFrameImage } from './use-frame-image.ts';
import { presetsFor } from './window-presets.ts';
import type { VoiWindow } from './window-presets.ts';

/** Images larger than this are rendered to fit it (viewport), not sent whole for every frame. */
const MAX_SIDE = 1024;
/** Wheel movement (pixels) per image: one notch of a mouse wheel; a touchpad's small steps add up. */
const WHEEL_STEP = 100;
/** A wheel that counts in lines (deltaMode 1, as Firefox's does) moves about this many pixels a line. */
const LINE_PIXELS = 33;
/** The window is asked of the hub once the person stops changing it for this long. */
const WINDOW_SETTLE_MS = 200;

const enc = encodeURIComponent;

export function framePath(study: string, series: string, frame: SeriesFrame, window: VoiWindow | undefined): string {
  const query = new URLSearchParams();
  if (window !== undefined) {
    query.set('window', `${Math.round(window.center)},${Math.max(1, Math.round(window.width))}`);
  }
  const { rows, columns } = frame.instance;
  if ((rows ?? 0) > MAX_SIDE || (columns ?? 0) > MAX_SIDE) {
    query.set('viewport', `${MAX_SIDE},${MAX_SIDE}`);
  }
  const base =
    `/dicomweb/studies/${enc(study)}/series/${enc(series)}/instances/${enc(frame.instance.sopInstanceUid)}` +
    `/frames/${frame.frame}/rendered`;
  return query.size > 0 ? `${base}?${query.toString()}` : base;
}

function useSettled<T>(value: T, delayMs: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), delayMs);
    return () => clearTimeout(timer);
  }, [value, delayMs]);
  return settled;
}

export interface FrameViewerProps {
  studyUid: string;
  seriesUid: string;
  seriesLabel: string;
}

export function FrameViewer({ studyUid, seriesUid, seriesLabel }: FrameViewerProps) {
  const metadata = useQuery({
    queryKey: ['series-metadata', studyUid, seriesUid],
    queryFn: async () => {
      const response = await hubFetch(`/dicomweb/studies/${enc(studyUid)}/series/${enc(seriesUid)}/metadata`, {
        headers: { accept: 'application/dicom+json' },
      });
      if (!response.ok) {
        throw await apiErrorOf(response);
      }
      return seriesInstances(await response.json());
    },
    staleTime: Infinity,
  });
  if (metadata.error) {
    return <ErrorAlert error={metadata.error} title="The series could not be read" />;
  }
  if (metadata.isPending) {
    return <Loader size="sm" aria-label="Loading the series" />;
  }
  const frames = seriesFrames(metadata.data);
  if (frames.length === 0) {
    return <Text c="dimmed">This series has no images.</Text>;
  }
  return <Frames studyUid={studyUid} seriesUid={seriesUid} seriesLabel={seriesLabel} frames={frames} />;
}

function Frames({ studyUid, seriesUid, seriesLabel, frames }: FrameViewerProps & { frames: SeriesFrame[] }) {
  const [index, setIndex] = useState(0);
  const [preset, setPreset] = useState('default');
  const [voi, setVoi] = useState<VoiWindow | undefined>(undefined);
  const settledWindow = useSettled(voi, WINDOW_SETTLE_MS);
  const stage = useRef<HTMLDivElement>(null);
  const wheel = useRef(0);
  const drag = useRef<{ x: number; y: number; start: VoiWindow } | undefined>(undefined);

  const count = frames.length;
  const go = (to: number) => setIndex(Math.min(count - 1, Math.max(0, to)));
  const current = frames[Math.min(index, count - 1)] as SeriesFrame;
  const modality = frames[0]?.instance.modality;
  const stored = frames[0]?.instance.window;
  const presets = presetsFor(modality);
  const path = framePath(studyUid, seriesUid, current, settledWindow);
  const ahead = [1, -1, 2, -2]
    .map((step) => frames[index + step])
    .filter((frame): frame is SeriesFrame => frame !== undefined)
    .map((frame) => framePath(studyUid, seriesUid, frame, settledWindow));
  const image = useFrameImage(path, ahead);

  // React's wheel listener is passive: the page would scroll too. A native one may prevent it.
  useEffect(() => {
    const element = stage.current;
    if (element === null) {
      return undefined;
    }
    const onWheel = (event: WheelEvent) => {
      event.preventDefault();
      wheel.current += event.deltaMode === 1 ? event.deltaY * LINE_PIXELS : event.deltaY;
      const steps = Math.trunc(wheel.current / WHEEL_STEP);
      if (steps !== 0) {
        wheel.current -= steps * WHEEL_STEP;
        setIndex((previous) => Math.min(count - 1, Math.max(0, previous + steps)));
      }
    };
    element.addEventListener('wheel', onWheel, { passive: false });
    return () => element.removeEventListener('wheel', onWheel);
  }, [count]);

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const moves: Record<string, number> = {
      ArrowDown: index + 1,
      ArrowRight: index + 1,
      ArrowUp: index - 1,
      ArrowLeft: index - 1,
      PageDown: index + 10,
      PageUp: index - 10,
      Home: 0,
      End: count - 1,
    };
    const to = moves[event.key];
    if (to !== undefined) {
      event.preventDefault();
      go(to);
    }
  };

  const choosePreset = (id: string) => {
    setPreset(id);
    if (id === 'default') {
      setVoi(undefined);
    } else if (id === 'stored' && stored !== undefined) {
      setVoi(stored);
    } else {
      const chosen = presets.find((candidate) => candidate.id === id);
      if (chosen !== undefined) {
        setVoi(chosen.window);
      }
    }
  };
  const setCustom = (next: VoiWindow) => {
    setPreset('custom');
    setVoi({ center: next.center, width: Math.max(1, next.width) });
  };
  // What the inputs start from before anything was chosen: the images' own window, else a wide one.
  const shownWindow = voi ?? stored ?? { center: 40, width: 400 };
  // Without a window of its own the hub stretches each image's min to max: no numbers to show.
  const known = voi !== undefined || stored !== undefined;

  const onPointerDown = (event: PointerEvent<HTMLDivElement>) => {
    if (event.button !== 0) {
      return;
    }
    event.currentTarget.setPointerCapture(event.pointerId);
    drag.current = { x: event.clientX, y: event.clientY, start: shownWindow };
  };
  const onPointerMove = (event: PointerEvent<HTMLDivElement>) => {
    const from = drag.current;
    if (from === undefined) {
      return;
    }
    // A full drag across 256 pixels changes the window by its own width: fine enough for any range.
    const scale = Math.max(1, from.start.width) / 256;
    setCustom({
      center: from.start.center + (event.clientY - from.y) * scale,
      width: from.start.width + (event.clientX - from.x) * scale,
    });
  };
  const endDrag = () => {
    drag.current = undefined;
  };

  const position = `Image ${index + 1} of ${count}`;
  const detail =
    current.instance.frames > 1
      ? `instance ${current.instance.instanceNumber ?? '?'}, frame ${current.frame} of ${current.instance.frames}`
      : `instance ${current.instance.instanceNumber ?? '?'}`;
  return (
    <Stack gap="sm">
      <div
        ref={stage}
        className="frame-stage"
        tabIndex={0}
        role="application"
        aria-label={`${seriesLabel}: ${position}. Scroll with the mouse wheel or the arrow keys; drag to change the window.`}
        onKeyDown={onKeyDown}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={endDrag}
        onPointerCancel={endDrag}
        data-testid="frame-stage"
      >
        {image.shown === undefined ? null : (
          <img
            src={image.shown.url}
            alt={`${seriesLabel}, ${position}`}
            className="frame-image"
            draggable={false}
            data-testid="frame-image"
            data-path={image.shown.path}
          />
        )}
        {image.loading ? <Loader size="sm" className="frame-loading" aria-label="Loading the image" /> : null}
      </div>
      {image.error && !image.loading ? (
        <Alert color="red" role="alert" title="This image could not be shown">
          {image.error instanceof Error ? image.error.message : String(image.error)}
        </Alert>
      ) : null}
      <Group justify="space-between" align="center">
        <Text size="sm" data-testid="frame-position" aria-live="polite">
          {position} · {detail}
        </Text>
        <Group gap="xs">
          <Button size="xs" variant="default" onClick={() => go(index - 1)} disabled={index === 0}>
            Previous image
          </Button>
          <Button size="xs" variant="default" onClick={() => go(index + 1)} disabled={index >= count - 1}>
            Next image
          </Button>
        </Group>
      </Group>
      {count > 1 ? (
        <Slider
          min={1}
          max={count}
          value={index + 1}
          onChange={(value) => go(value - 1)}
          thumbLabel="Image number"
          label={(value) => `Image ${value}`}
        />
      ) : null}
      <Group align="end" gap="sm" wrap="wrap">
        <NativeSelect
          label="Window"
          value={preset}
          onChange={(event) => choosePreset(event.currentTarget.value)}
          data={[
            { value: 'default', label: 'As the hub renders it (stored window)' },
            ...(stored === undefined
              ? []
              : [{ value: 'stored', label: `The images’ own (C ${stored.center}, W ${stored.width})` }]),
            ...presets.map((candidate) => ({ value: candidate.id, label: candidate.label })),
            { value: 'custom', label: 'Custom' },
          ]}
        />
        <NumberInput
          label="Window center"
          placeholder="auto"
          value={known ? Math.round(shownWindow.center) : ''}
          onChange={(value) => {
            const center = Number(value);
            if (value !== '' && Number.isFinite(center)) {
              setCustom({ ...shownWindow, center });
            }
          }}
          w={140}
        />
        <NumberInput
          label="Window width"
          placeholder="auto"
          min={1}
          value={known ? Math.round(shownWindow.width) : ''}
          onChange={(value) => {
            const width = Number(value);
            if (value !== '' && Number.isFinite(width) && width >= 1) {
              setCustom({ ...shownWindow, width });
            }
          }}
          w={140}
        />
        <Button size="sm" variant="default" onClick={() => choosePreset('default')} disabled={preset === 'default'}>
          Reset the window
        </Button>
      </Group>
    </Stack>
  );
}
