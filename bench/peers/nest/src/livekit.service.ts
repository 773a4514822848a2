import { ForbiddenException, Inject, Injectable } from '@nestjs/common';
import { AccessToken } from 'livekit-server-sdk';
import { PEER_CONFIG, PeerConfig } from './config';
import type { CreateTokenDto } from './create-token.dto';
import type { AuthenticatedUser } from './jwt.strategy';

export interface TokenResponse {
  token: string;
  identity: string;
  roomId: string;
  name?: string;
  expiresAt: string;
}

@Injectable()
export class LivekitService {
  constructor(@Inject(PEER_CONFIG) private readonly config: PeerConfig) {}

  async generateToken(dto: CreateTokenDto, user: AuthenticatedUser): Promise<TokenResponse> {
    if (dto.identity !== undefined && dto.identity !== user.id) {
      throw new ForbiddenException(
        'Insufficient permissions. Requesting a token for another identity is not allowed',
      );
    }
    const identity = user.id;
    const name = dto.name ?? user.name;
    const ttl = dto.ttl ?? this.config.defaultTtl;
    const accessToken = new AccessToken(this.config.apiKey, this.config.apiSecret, {
      identity,
      name,
      ttl,
    });
    accessToken.addGrant({
      room: dto.roomId,
      roomJoin: true,
      canPublish: true,
      canSubscribe: true,
      canPublishData: true,
    });
    const token = await accessToken.toJwt();
    const expiresAt = new Date(Date.now() + ttl * 1000).toISOString();
    return { token, identity, roomId: dto.roomId, name, expiresAt };
  }

  connectionInfo() {
    return {
      serverUrl: this.config.serverUrl,
      configured: true,
      features: { audio: true, video: true, screenShare: true, recording: false },
    };
  }
}
