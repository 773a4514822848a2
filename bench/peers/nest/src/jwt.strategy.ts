import { Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import { AuthGuard, PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { PEER_CONFIG, PeerConfig } from './config';

/** What the guard puts on `request.user`. */
export interface AuthenticatedUser {
  id: string;
  name?: string;
  permissions: string[];
}

interface CallerPayload {
  sub?: string;
  name?: unknown;
  permissions?: unknown;
}

@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy) {
  constructor(@Inject(PEER_CONFIG) config: PeerConfig) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      ignoreExpiration: false,
      secretOrKey: config.callerKey,
      algorithms: config.algorithms,
      issuer: config.issuer,
      audience: config.audiences,
    });
  }

  validate(payload: CallerPayload): AuthenticatedUser {
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new UnauthorizedException();
    }
    return {
      id: payload.sub,
      name: typeof payload.name === 'string' && payload.name !== '' ? payload.name : undefined,
      permissions: Array.isArray(payload.permissions)
        ? payload.permissions.filter((p): p is string => typeof p === 'string')
        : [],
    };
  }
}

@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {}
