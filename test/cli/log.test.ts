import { expect } from 'chai';
import { Logger, colorWanted, levelFromFlags, type LogStream } from '../../src/log.js';

function buffer(isTTY = false): LogStream & { text: string } {
  return {
    text: '',
    isTTY,
    write(s: string) {
      this.text += s;
      return true;
    },
  };
}

describe('log', function () {
  it('filters by level and prefixes warnings and errors', function () {
    const out = buffer();
    const log = new Logger({ level: 'info', stream: out });
    log.debug('hidden');
    log.info('backend: cpu');
    log.warn('slow');
    log.error('broken');
    expect(out.text).to.equal('backend: cpu\nwarning: slow\nerror: broken\n');
  });

  it('silent prints nothing; debug prints everything', function () {
    const quiet = buffer();
    new Logger({ level: 'silent', stream: quiet }).error('x');
    expect(quiet.text).to.equal('');
    const loud = buffer();
    new Logger({ level: 'debug', stream: loud }).debug('d');
    expect(loud.text).to.equal('debug: d\n');
  });

  it('colours only on a TTY and never with NO_COLOR', function () {
    const tty = buffer(true);
    expect(colorWanted(tty, {})).to.equal(true);
    expect(colorWanted(tty, { NO_COLOR: '1' })).to.equal(false);
    expect(colorWanted(tty, { NO_COLOR: '' })).to.equal(true);
    expect(colorWanted(buffer(false), {})).to.equal(false);
    new Logger({ stream: tty, color: true }).error('red');
    expect(tty.text).to.equal('\x1b[31merror: red\x1b[0m\n');
  });

  it('maps --quiet and --verbose to levels (quiet wins)', function () {
    expect(levelFromFlags({})).to.equal('info');
    expect(levelFromFlags({ verbose: true })).to.equal('debug');
    expect(levelFromFlags({ quiet: true, verbose: true })).to.equal('error');
  });
});
