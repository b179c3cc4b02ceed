# Sourced by tests/pack/build: carbon_pack am|ei VERSION builds the Carbon 4 based stand-in pack
# $out/wso2am-VERSION.zip (API Manager 1.x) or $out/wso2ei-VERSION.zip (Enterprise Integrator 6.x) from the
# build's $work, $p (the 4.x pack: its dbscripts and keystores are the same) and $work/carbon-standin.jar.
# The XML files keep the real files' element structure and default values, so that edits written for the
# real packs apply here; their comments are short notes of ours.

# carbon_xml NAME KEY VERSION CONF_DIR: conf/carbon.xml.
carbon_xml() {
    sed -e "s|@NAME@|$1|" -e "s|@KEY@|$2|" -e "s|@VERSION@|$3|" -e "s|@CONF@|$4|" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- The server's main configuration (stand-in pack: the real file's elements and defaults). -->
<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">

    <Name>@NAME@</Name>
    <ServerKey>@KEY@</ServerKey>
    <Version>@VERSION@</Version>

    <!-- Host name or IP address of this node in the endpoint references of its services. -->
    <!--HostName>www.wso2.org</HostName-->

    <!-- Host name of the management console. -->
    <!--MgtHostName>mgt.wso2.org</MgtHostName-->

    <ServerURL>local:/${carbon.context}/services/</ServerURL>

    <ServerRoles>
        <Role>@KEY@</Role>
    </ServerRoles>

    <Package>org.wso2.carbon</Package>

    <WebContextRoot>/</WebContextRoot>

    <ItemsPerPage>15</ItemsPerPage>

    <Ports>
        <!-- Added to every port of this server (these, catalina-server.xml's and axis2.xml's transports);
             -DportOffset on the command line takes precedence. Not added to the clustering localMemberPort. -->
        <Offset>0</Offset>

        <JMX>
            <RMIRegistryPort>9999</RMIRegistryPort>
            <RMIServerPort>11111</RMIServerPort>
        </JMX>

        <EmbeddedLDAP>
            <LDAPServerPort>10389</LDAPServerPort>
            <KDCServerPort>8000</KDCServerPort>
        </EmbeddedLDAP>

        <ThriftEntitlementReceivePort>10500</ThriftEntitlementReceivePort>
    </Ports>

    <JNDI>
        <DefaultInitialContextFactory>org.wso2.carbon.tomcat.jndi.CarbonJavaURLContextFactory</DefaultInitialContextFactory>
        <Restrictions>
            <AllTenants>
                <UrlContexts>
                    <UrlContext>
                        <Scheme>java</Scheme>
                    </UrlContext>
                </UrlContexts>
            </AllTenants>
        </Restrictions>
    </JNDI>

    <IsCloudDeployment>false</IsCloudDeployment>

    <EnableMetering>false</EnableMetering>

    <MaxThreadExecutionTime>600</MaxThreadExecutionTime>

    <GhostDeployment>
        <Enabled>false</Enabled>
    </GhostDeployment>

    <Tenant>
        <LoadingPolicy>
            <LazyLoading>
                <IdleTime>30</IdleTime>
            </LazyLoading>
        </LoadingPolicy>
    </Tenant>

    <Cache>
        <DefaultCacheTimeout>15</DefaultCacheTimeout>
        <ForceLocalCache>false</ForceLocalCache>
    </Cache>

    <Axis2Config>
        <RepositoryLocation>${carbon.home}/repository/deployment/server/</RepositoryLocation>
        <DeploymentUpdateInterval>15</DeploymentUpdateInterval>
        <ConfigurationFile>@CONF@/axis2/axis2.xml</ConfigurationFile>
        <ServiceGroupContextIdleTime>30000</ServiceGroupContextIdleTime>
        <ClientRepositoryLocation>${carbon.home}/repository/deployment/client/</ClientRepositoryLocation>
        <clientAxis2XmlLocation>@CONF@/axis2/axis2_client.xml</clientAxis2XmlLocation>
        <HideAdminServiceWSDLs>true</HideAdminServiceWSDLs>
    </Axis2Config>

    <ServiceUserRoles>
        <Role>
            <Name>admin</Name>
            <Description>Default Administrator Role</Description>
        </Role>
        <Role>
            <Name>user</Name>
            <Description>Default User Role</Description>
        </Role>
    </ServiceUserRoles>

    <CryptoService>
        <Enabled>true</Enabled>
        <InternalCryptoProviderClassName>org.wso2.carbon.crypto.provider.KeyStoreBasedInternalCryptoProvider</InternalCryptoProviderClassName>
        <ExternalCryptoProviderClassName>org.wso2.carbon.core.encryption.KeyStoreBasedExternalCryptoProvider</ExternalCryptoProviderClassName>
    </CryptoService>

    <Security>
        <!-- The primary keystore: signs and encrypts (KeyAlias's private key). -->
        <KeyStore>
            <Location>${carbon.home}/repository/resources/security/wso2carbon.jks</Location>
            <Type>JKS</Type>
            <Password>wso2carbon</Password>
            <KeyAlias>wso2carbon</KeyAlias>
            <KeyPassword>wso2carbon</KeyPassword>
        </KeyStore>

        <RegistryKeyStore>
            <Location>${carbon.home}/repository/resources/security/wso2carbon.jks</Location>
            <Type>JKS</Type>
            <Password>wso2carbon</Password>
            <KeyAlias>wso2carbon</KeyAlias>
            <KeyPassword>wso2carbon</KeyPassword>
        </RegistryKeyStore>

        <!-- The certificates trusted by this server's outgoing TLS calls. -->
        <TrustStore>
            <Location>${carbon.home}/repository/resources/security/client-truststore.jks</Location>
            <Type>JKS</Type>
            <Password>wso2carbon</Password>
        </TrustStore>

        <NetworkAuthenticatorConfig>
        </NetworkAuthenticatorConfig>

        <TomcatRealm>UserManager</TomcatRealm>

        <DisableTokenStore>false</DisableTokenStore>

        <XSSPreventionConfig>
            <Enabled>true</Enabled>
            <Rule>allow</Rule>
            <Patterns>
            </Patterns>
        </XSSPreventionConfig>
    </Security>

    <WorkDirectory>${carbon.home}/tmp/work</WorkDirectory>

    <HouseKeeping>
        <AutoStart>true</AutoStart>
        <Interval>10</Interval>
        <MaxTempFileLifetime>30</MaxTempFileLifetime>
    </HouseKeeping>

    <FileUploadConfig>
        <TotalFileSizeLimit>100</TotalFileSizeLimit>
        <Mapping>
            <Actions>
                <Action>keystore</Action>
                <Action>certificate</Action>
                <Action>*</Action>
            </Actions>
            <Class>org.wso2.carbon.ui.transports.fileupload.AnyFileUploadExecutor</Class>
        </Mapping>
    </FileUploadConfig>

    <!-- Deployment synchronizer: off; the nodes of a cluster share repository/deployment/server another way
         (rsync, a shared file system). -->
    <DeploymentSynchronizer>
        <Enabled>false</Enabled>
        <AutoCommit>false</AutoCommit>
        <AutoCheckout>true</AutoCheckout>
        <RepositoryType>svn</RepositoryType>
        <SvnUrl>http://svnrepo.example.com/repos/</SvnUrl>
        <SvnUser>username</SvnUser>
        <SvnPassword>password</SvnPassword>
        <SvnUrlAppendTenantId>true</SvnUrlAppendTenantId>
    </DeploymentSynchronizer>

    <ServerInitializers>
    </ServerInitializers>

    <RequireCarbonServlet>${require.carbon.servlet}</RequireCarbonServlet>

    <StatisticsReporterDisabled>true</StatisticsReporterDisabled>

    <FeatureRepository>
        <RepositoryName>default repository</RepositoryName>
        <RepositoryURL>http://product-dist.wso2.com/p2/carbon/releases/wilkes/</RepositoryURL>
    </FeatureRepository>
</Server>
EOF
}

# tls_stores: the keystore and truststore parameters of axis2.xml's HTTPS transport receiver and sender,
# which name the same stores.
tls_stores() {
    cat <<'EOF'
        <parameter name="keystore" locked="false">
            <KeyStore>
                <Location>repository/resources/security/wso2carbon.jks</Location>
                <Type>JKS</Type>
                <Password>wso2carbon</Password>
                <KeyPassword>wso2carbon</KeyPassword>
            </KeyStore>
        </parameter>
        <parameter name="truststore" locked="false">
            <TrustStore>
                <Location>repository/resources/security/client-truststore.jks</Location>
                <Type>JKS</Type>
                <Password>wso2carbon</Password>
            </TrustStore>
        </parameter>
EOF
}

# phase_order TYPE PHASE...: an axis2.xml phaseOrder of the PHASE names in order, NAME:CLASS for a phase
# with its own class.
phase_order() {
    echo "    <phaseOrder type=\"$1\">"
    shift
    local phase
    for phase in "$@"; do
        case "$phase" in
            *:*) echo "        <phase name=\"${phase%%:*}\" class=\"${phase#*:}\"/>" ;;
            *) echo "        <phase name=\"$phase\"/>" ;;
        esac
    done
    echo "    </phaseOrder>"
}

# conf/axis2/axis2.xml: the pass-through transports (8280/8243) and the clustering section.
axis2_xml() {
    cat <<'EOF'
<!-- The Axis2/Synapse engine of the server (stand-in pack: the real file's transports and clustering). -->
<axisconfig name="AxisJava2.0">

    <module ref="addressing"/>

    <parameter name="hotdeployment">true</parameter>
    <parameter name="hotupdate">true</parameter>
    <parameter name="enableMTOM" locked="false">false</parameter>
    <parameter name="enableSwA" locked="false">false</parameter>
    <parameter name="cacheAttachments" locked="false">false</parameter>
    <parameter name="attachmentDIR" locked="false">work/mtom</parameter>
    <parameter name="sizeThreshold" locked="false">4000</parameter>
    <parameter name="exposeServiceMetadata">true</parameter>
    <parameter name="httpContentNegotiation">false</parameter>
    <parameter name="disableREST" locked="false">false</parameter>
    <parameter name="servicePath">services</parameter>
    <parameter name="ServicesDirectory">axis2services</parameter>
    <parameter name="ModulesDirectory">axis2modules</parameter>

    <parameter name="SynapseConfig.ConfigurationFile" locked="false">repository/deployment/server/synapse-configs</parameter>
    <parameter name="SynapseConfig.HomeDirectory" locked="false">.</parameter>
    <parameter name="SynapseConfig.ResolveRoot" locked="false">.</parameter>
    <parameter name="SynapseConfig.ServerName" locked="false">localhost</parameter>

    <listener class="org.wso2.carbon.core.deployment.DeploymentInterceptor"/>

    <deployer extension=".xml" directory="synapse-configs" class="org.wso2.carbon.mediation.initializer.deployment.SynapseConfigurationDeployer"/>

    <messageReceivers>
        <messageReceiver mep="http://www.w3.org/ns/wsdl/in-only"
                         class="org.apache.synapse.core.axis2.SynapseMessageReceiver"/>
        <messageReceiver mep="http://www.w3.org/ns/wsdl/in-out"
                         class="org.apache.synapse.core.axis2.SynapseMessageReceiver"/>
    </messageReceivers>

    <!-- ================================================= -->
    <!-- In Transports: the message traffic ports (+ carbon.xml offset) -->
    <!-- ================================================= -->
    <transportReceiver name="http" class="org.apache.synapse.transport.passthru.PassThroughHttpListener">
        <parameter name="port" locked="false">8280</parameter>
        <parameter name="non-blocking" locked="false">true</parameter>
        <!--parameter name="bind-address" locked="false">hostname or IP address</parameter-->
        <!--parameter name="WSDLEPRPrefix" locked="false">https://apachehost:port/somepath</parameter-->
        <parameter name="httpGetProcessor" locked="false">org.wso2.carbon.mediation.transport.handlers.PassThroughNHttpGetProcessor</parameter>
    </transportReceiver>

    <transportReceiver name="https" class="org.apache.synapse.transport.passthru.PassThroughHttpSSLListener">
        <parameter name="port" locked="false">8243</parameter>
        <parameter name="non-blocking" locked="false">true</parameter>
        <!--parameter name="bind-address" locked="false">hostname or IP address</parameter-->
        <!--parameter name="WSDLEPRPrefix" locked="false">https://apachehost:port/somepath</parameter-->
        <parameter name="httpGetProcessor" locked="false">org.wso2.carbon.mediation.transport.handlers.PassThroughNHttpGetProcessor</parameter>
EOF
    tls_stores
    cat <<'EOF'
        <!--<parameter name="SSLVerifyClient">require</parameter>-->
    </transportReceiver>

    <!-- local transport, used inside the server -->
    <transportReceiver name="local" class="org.wso2.carbon.core.transports.local.CarbonLocalTransportReceiver"/>

    <!-- ================================================= -->
    <!-- Out Transports -->
    <!-- ================================================= -->
    <transportSender name="http" class="org.apache.synapse.transport.passthru.PassThroughHttpSender">
        <parameter name="non-blocking" locked="false">true</parameter>
    </transportSender>

    <transportSender name="https" class="org.apache.synapse.transport.passthru.PassThroughHttpSSLSender">
        <parameter name="non-blocking" locked="false">true</parameter>
EOF
    tls_stores
    cat <<'EOF'
        <parameter name="HostnameVerifier">AllowAll</parameter>
    </transportSender>

    <transportSender name="local" class="org.wso2.carbon.core.transports.local.CarbonLocalTransportSender"/>

    <!-- ================================================= -->
    <!-- Clustering -->
    <!-- ================================================= -->
    <!-- Off by default. membershipScheme: multicast (members discovered by multicast) or wka (well-known
         address: a node joins by contacting the members listed in <members>). localMemberHost/localMemberPort
         are what this node advertises and listens on; the port offset is not added to localMemberPort. -->
    <clustering class="org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent"
                enable="false">

        <parameter name="AvoidInitiation">true</parameter>

        <parameter name="membershipScheme">multicast</parameter>
        <!--<parameter name="licenseKey">xxx</parameter>-->
        <!--<parameter name="mgtCenterURL">http://localhost:8081/mancenter/</parameter>-->

        <!-- Only nodes of the same domain form a cluster. -->
        <parameter name="domain">wso2.carbon.domain</parameter>

        <!--<parameter name="mcastAddress">228.0.0.4</parameter>-->
        <parameter name="mcastPort">45564</parameter>
        <parameter name="mcastTTL">100</parameter>
        <parameter name="mcastTimeout">60</parameter>
        <!--
            <parameter name="mcastBindAddress">127.0.0.1</parameter>
        -->

        <!-- The address this member advertises to the others. -->
        <parameter name="localMemberHost">127.0.0.1</parameter>

        <!-- The address it binds to, when not localMemberHost. -->
        <!--
        <parameter name="localMemberBindAddress">127.0.0.1</parameter>
        -->

        <parameter name="localMemberPort">4000</parameter>

        <!--
        <parameter name="localMemberBindPort">4001</parameter>
        -->

        <parameter name="properties">
            <property name="backendServerURL" value="https://${hostName}:${httpsPort}/services/"/>
            <property name="mgtConsoleURL" value="https://${hostName}:${httpsPort}/"/>
            <property name="subDomain" value="worker"/>
        </parameter>

        <!-- The well-known members (used with membershipScheme wka): hostName may be a range of the last
             octet, e.g. 10.0.0.2-10. -->
        <members>
            <member>
                <hostName>127.0.0.1</hostName>
                <port>4000</port>
            </member>
        </members>

        <groupManagement enable="false">
            <applicationDomain name="wso2.as.domain"
                               description="AS group"
                               agent="org.wso2.carbon.core.clustering.hazelcast.HazelcastGroupManagementAgent"
                               subDomain="worker"
                               port="2222"/>
        </groupManagement>
    </clustering>

    <!-- ================================================= -->
    <!-- Phases -->
    <!-- ================================================= -->
EOF
    # The incoming flows differ only in their last phase.
    local in=(MsgInObservation Validation Transport Addressing Security PreDispatch
        Dispatch:org.apache.axis2.engine.DispatchPhase OpPhase)
    phase_order InFlow "${in[@]}" OperationInPhase
    phase_order OutFlow OpPhase OperationOutPhase PolicyDetermination MessageOut Security MsgOutObservation
    phase_order InFaultFlow "${in[@]}" OperationInFaultPhase
    phase_order OutFaultFlow OpPhase OperationOutFaultPhase PolicyDetermination MessageOut Security Transport \
        MsgOutObservation
    echo "</axisconfig>"
}

# datasource NAME JNDI DESCRIPTION H2_DB: one RDBMS datasource on the pack's embedded H2 database.
datasource() {
    cat <<EOF

        <datasource>
            <name>$1</name>
            <description>$3</description>
            <jndiConfig>
                <name>$2</name>
            </jndiConfig>
            <definition type="RDBMS">
                <configuration>
                    <url>jdbc:h2:repository/database/$4;DB_CLOSE_ON_EXIT=FALSE;LOCK_TIMEOUT=60000</url>
                    <username>wso2carbon</username>
                    <password>wso2carbon</password>
                    <driverClassName>org.h2.Driver</driverClassName>
                    <maxActive>50</maxActive>
                    <maxWait>60000</maxWait>
                    <testOnBorrow>true</testOnBorrow>
                    <validationQuery>SELECT 1</validationQuery>
                    <validationInterval>30000</validationInterval>
                    <defaultAutoCommit>false</defaultAutoCommit>
                </configuration>
            </definition>
        </datasource>
EOF
}

# master_datasources am|ei: conf/datasources/master-datasources.xml.
master_datasources() {
    cat <<'EOF'
<!-- The server's datasources (stand-in pack): each is bound to its jndiConfig name, the name that
     registry.xml, user-mgt.xml and api-manager.xml refer to. -->
<datasources-configuration xmlns:svns="http://org.wso2.securevault/configuration">

    <providers>
        <provider>org.wso2.carbon.ndatasource.rdbms.RDBMSDataSourceReader</provider>
    </providers>

    <datasources>
EOF
    datasource WSO2_CARBON_DB jdbc/WSO2CarbonDB "Local registry and user store (embedded H2)" WSO2CARBON_DB
    if [ "$1" = am ]; then
        datasource WSO2AM_DB jdbc/WSO2AM_DB "API-M database (embedded H2)" WSO2AM_DB
    fi
    cat <<'EOF'
    </datasources>

</datasources-configuration>
EOF
}

# conf/registry.xml: the local registry on WSO2_CARBON_DB; the mount of a shared one is left commented.
registry_xml() {
    cat <<'EOF'
<!-- The registry (stand-in pack): the current dbConfig is the local registry; a dbConfig may also back a
     remoteInstance that mounts /_system/config or /_system/governance from a database shared by the nodes. -->
<wso2registry>

    <currentDBConfig>wso2registry</currentDBConfig>
    <readOnly>false</readOnly>
    <enableCache>true</enableCache>
    <registryRoot>/</registryRoot>

    <dbConfig name="wso2registry">
        <dataSource>jdbc/WSO2CarbonDB</dataSource>
    </dbConfig>

    <!--
    <dbConfig name="sharedregistry">
        <dataSource>jdbc/WSO2RegistryDB</dataSource>
    </dbConfig>

    <remoteInstance url="https://localhost:9443/registry">
        <id>instanceid</id>
        <dbConfig>sharedregistry</dbConfig>
        <readOnly>false</readOnly>
        <enableCache>true</enableCache>
        <registryRoot>/</registryRoot>
        <cacheId>wso2carbon@jdbc:mysql://localhost:3306/regdb</cacheId>
    </remoteInstance>

    <mount path="/_system/config" overwrite="true">
        <instanceId>instanceid</instanceId>
        <targetPath>/_system/nodes</targetPath>
    </mount>

    <mount path="/_system/governance" overwrite="true">
        <instanceId>instanceid</instanceId>
        <targetPath>/_system/governance</targetPath>
    </mount>
    -->

    <handler class="org.wso2.carbon.registry.extensions.handlers.SynapseRepositoryHandler">
        <filter class="org.wso2.carbon.registry.core.jdbc.handlers.filters.MediaTypeMatcher">
            <property name="mediaType">application/vnd.apache.synapse</property>
        </filter>
    </handler>

    <versionResourcesOnChange>false</versionResourcesOnChange>

    <staticConfiguration>
        <versioningProperties>true</versioningProperties>
        <versioningComments>true</versioningComments>
        <versioningTags>true</versioningTags>
        <versioningRatings>true</versioningRatings>
    </staticConfiguration>
</wso2registry>
EOF
}

# conf/user-mgt.xml: the JDBC user store on the realm's dataSource.
user_mgt_xml() {
    cat <<'EOF'
<!-- The user realm (stand-in pack). The realm's dataSource holds the UM_* tables; a JDBC user store with
     a dataSource property of its own keeps its users there instead. -->
<UserManager>
    <Realm>
        <Configuration>
            <AddAdmin>true</AddAdmin>
            <AdminRole>admin</AdminRole>
            <AdminUser>
                <UserName>admin</UserName>
                <Password>admin</Password>
            </AdminUser>
            <EveryOneRoleName>everyone</EveryOneRoleName>
            <Property name="isCascadeDeleteEnabled">true</Property>
            <Property name="dataSource">jdbc/WSO2CarbonDB</Property>
        </Configuration>

        <!-- An LDAP user store instead of the JDBC one below: -->
        <!--
        <UserStoreManager class="org.wso2.carbon.user.core.ldap.ReadWriteLDAPUserStoreManager">
            <Property name="TenantManager">org.wso2.carbon.user.core.tenant.CommonHybridLDAPTenantManager</Property>
            <Property name="ConnectionURL">ldap://localhost:${Ports.EmbeddedLDAP.LDAPServerPort}</Property>
            <Property name="ConnectionName">uid=admin,ou=system</Property>
            <Property name="ConnectionPassword">admin</Property>
            <Property name="UserSearchBase">ou=Users,dc=wso2,dc=org</Property>
            <Property name="GroupSearchBase">ou=Groups,dc=wso2,dc=org</Property>
        </UserStoreManager>
        -->

        <UserStoreManager class="org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager">
            <Property name="TenantManager">org.wso2.carbon.user.core.tenant.JDBCTenantManager</Property>
            <Property name="ReadOnly">false</Property>
            <Property name="MaxUserNameListLength">100</Property>
            <Property name="IsEmailUserName">false</Property>
            <Property name="DomainCalculation">default</Property>
            <Property name="PasswordDigest">SHA-256</Property>
            <Property name="StoreSaltedPassword">true</Property>
            <Property name="ReadGroups">true</Property>
            <Property name="WriteGroups">true</Property>
            <Property name="UserNameUniqueAcrossTenants">false</Property>
            <Property name="PasswordJavaRegEx">^[\S]{5,30}$</Property>
            <Property name="PasswordJavaScriptRegEx">^[\S]{5,30}$</Property>
            <Property name="UsernameJavaRegEx">^[\S]{3,30}$</Property>
            <Property name="UsernameJavaScriptRegEx">^[\S]{3,30}$</Property>
            <Property name="RolenameJavaRegEx">^[\S]{3,30}$</Property>
            <Property name="RolenameJavaScriptRegEx">^[\S]{3,30}$</Property>
            <Property name="UserRolesCacheEnabled">true</Property>
            <Property name="MaxRoleNameListLength">100</Property>
            <Property name="SCIMEnabled">false</Property>
        </UserStoreManager>

        <AuthorizationManager class="org.wso2.carbon.user.core.authorization.JDBCAuthorizationManager">
            <Property name="AdminRoleManagementPermissions">/permission</Property>
            <Property name="AuthorizationCacheEnabled">true</Property>
        </AuthorizationManager>
    </Realm>
</UserManager>
EOF
}

# conf/tomcat/catalina-server.xml: the servlet transports (9763/9443 + offset).
catalina_xml() {
    cat <<'EOF'
<!-- The servlet transports of the management console, admin services and webapps (stand-in pack). -->
<Server port="8005" shutdown="SHUTDOWN">
    <Service className="org.wso2.carbon.tomcat.ext.service.ExtendedStandardService" name="Catalina">
        <!-- optional: proxyPort="80" (the port of a load balancer in front) -->
        <Connector protocol="org.apache.coyote.http11.Http11NioProtocol"
                   port="9763"
                   redirectPort="9443"
                   bindOnInit="false"
                   maxHttpHeaderSize="8192"
                   acceptorThreadCount="2"
                   maxThreads="250"
                   minSpareThreads="50"
                   disableUploadTimeout="false"
                   connectionUploadTimeout="120000"
                   maxKeepAliveRequests="200"
                   acceptCount="200"
                   server="WSO2 Carbon Server"
                   compression="on"
                   compressionMinSize="2048"
                   noCompressionUserAgents="gozilla, traviata"
                   compressableMimeType="text/html,text/javascript,application/x-javascript,application/javascript,application/xml,text/css,application/xslt+xml,text/xsl,image/gif,image/jpg,image/jpeg"
                   URIEncoding="UTF-8"/>

        <!-- optional: proxyPort="443" -->
        <Connector protocol="org.apache.coyote.http11.Http11NioProtocol"
                   port="9443"
                   bindOnInit="false"
                   sslProtocol="TLS"
                   sslEnabledProtocols="TLSv1,TLSv1.1,TLSv1.2"
                   maxHttpHeaderSize="8192"
                   acceptorThreadCount="2"
                   maxThreads="250"
                   minSpareThreads="50"
                   disableUploadTimeout="false"
                   enableLookups="false"
                   connectionUploadTimeout="120000"
                   maxKeepAliveRequests="200"
                   acceptCount="200"
                   server="WSO2 Carbon Server"
                   clientAuth="false"
                   compression="on"
                   scheme="https"
                   secure="true"
                   SSLEnabled="true"
                   compressionMinSize="2048"
                   noCompressionUserAgents="gozilla, traviata"
                   compressableMimeType="text/html,text/javascript,application/x-javascript,application/javascript,application/xml,text/css,application/xslt+xml,text/xsl,image/gif,image/jpg,image/jpeg"
                   keystoreFile="${carbon.home}/repository/resources/security/wso2carbon.jks"
                   keystorePass="wso2carbon"
                   URIEncoding="UTF-8"/>

        <Engine name="Catalina" defaultHost="localhost">
            <Realm className="org.wso2.carbon.tomcat.ext.realms.CarbonTomcatRealm"/>
            <Host name="localhost" unpackWARs="true" deployOnStartup="false" autoDeploy="false"
                  appBase="${carbon.home}/repository/deployment/server/webapps/">
                <Valve className="org.wso2.carbon.tomcat.ext.valves.CarbonContextCreatorValve"/>
                <Valve className="org.apache.catalina.valves.AccessLogValve" directory="${carbon.home}/repository/logs"
                       prefix="http_access_" suffix=".log"
                       pattern="combined"/>
                <Valve className="org.wso2.carbon.tomcat.ext.valves.CarbonStuckThreadDetectionValve" threshold="600"/>
                <Valve className="org.wso2.carbon.tomcat.ext.valves.CompositeValve"/>
            </Host>
        </Engine>
    </Service>
</Server>
EOF
}

# repository/conf/api-manager.xml (API-M only): the database and the ServerURLs of the other components,
# by default this node itself. Element names as in the distributed-deployment instructions (APIKeyManager,
# APIGateway/ServerURL); the stand-in also reads the later APIKeyValidator and APIGateway/Environments.
api_manager_xml() {
    cat <<'EOF'
<!-- API Manager (stand-in pack). -->
<APIManager>
    <!-- JNDI name of the API-M database: a datasource of datasources/master-datasources.xml. -->
    <DataSourceName>jdbc/WSO2AM_DB</DataSourceName>

    <GatewayType>Synapse</GatewayType>

    <EnableSecureVault>false</EnableSecureVault>

    <!-- The Key Manager's authentication service (Publisher, Store). -->
    <AuthManager>
        <ServerURL>https://${carbon.local.ip}:${mgt.transport.https.port}${carbon.context}services/</ServerURL>
        <Username>${admin.username}</Username>
        <Password>${admin.password}</Password>
    </AuthManager>

    <!-- The Gateway's admin services, where the Publisher deploys APIs. -->
    <APIGateway>
        <ServerURL>https://${carbon.local.ip}:${mgt.transport.https.port}${carbon.context}services/</ServerURL>
        <Username>${admin.username}</Username>
        <Password>${admin.password}</Password>
        <APIEndpointURL>http://${carbon.local.ip}:${http.nio.port},https://${carbon.local.ip}:${https.nio.port}</APIEndpointURL>
    </APIGateway>

    <!-- The Key Manager's key validation service (Gateway, Publisher, Store). -->
    <APIKeyManager>
        <ServerURL>https://${carbon.local.ip}:${mgt.transport.https.port}${carbon.context}services/</ServerURL>
        <Username>${admin.username}</Username>
        <Password>${admin.password}</Password>
        <KeyValidatorClientType>ThriftClient</KeyValidatorClientType>
        <ThriftClientPort>10397</ThriftClientPort>
        <ThriftClientConnectionTimeOut>10000</ThriftClientConnectionTimeOut>
        <EnableThriftServer>true</EnableThriftServer>
        <ThriftServerHost>localhost</ThriftServerHost>
    </APIKeyManager>

    <APIUsageTracking>
        <Enabled>false</Enabled>
    </APIUsageTracking>

    <APIStore>
        <DisplayURL>false</DisplayURL>
        <URL>https://localhost:${mgt.transport.https.port}/store</URL>
    </APIStore>

    <APIPublisher>
        <DisplayURL>false</DisplayURL>
        <URL>https://localhost:${mgt.transport.https.port}/publisher</URL>
    </APIPublisher>
</APIManager>
EOF
}

# start_script NAME CONF_PROP JAR: bin/NAME, the foreground start script.
start_script() {
    sed -e "s|@NAME@|$1|g" -e "s|@CONF@|$2|" -e "s|@JAR@|$3|" <<'EOF'
#!/bin/sh
# Stand-in start script: runs the server in the foreground (for systemd Type=simple; the real script's
# start/stop/restart/--debug are not supported). Arguments starting with -D (e.g. -DportOffset=2) go to the
# JVM after the memory settings below and $JAVA_OPTS, as in the real script.
CARBON_HOME=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ -n "$JAVA_HOME" ]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
JVM_MEM_OPTS="-Xms256m -Xmx1024m"
props=""
for a in "$@"; do
  case "$a" in
    -D*) props="$props $a" ;;
    *) echo "@NAME@: ignoring argument $a" >&2 ;;
  esac
done
cd "$CARBON_HOME" || exit 1
# shellcheck disable=SC2086
exec "$JAVA" $JVM_MEM_OPTS $JAVA_OPTS $props -Dcarbon.home="$CARBON_HOME"@CONF@ -cp "$CARBON_HOME/@JAR@" CarbonStandIn
EOF
}

# A small webapp archive NAME.war (a web.xml only) in DIR.
war() {
    local t
    t=$(mktemp -d "$work/war.XXXXXX")
    mkdir -p "$t/WEB-INF"
    printf '<web-app><display-name>%s</display-name></web-app>\n' "$2" >"$t/WEB-INF/web.xml"
    (cd "$t" && zip -qr "$1/$2.war" WEB-INF)
    rm -rf "$t"
}

carbon_pack() {
    local kind=$1 v=$2 name d c dep
    if [ "$kind" = am ]; then name=wso2am-$v; else name=wso2ei-$v; fi
    d=$work/$name
    if [ "$kind" = am ]; then c=$d/repository/conf; else c=$d/conf; fi
    dep=$d/repository/deployment/server
    mkdir -p "$d/bin" "$c/axis2" "$c/datasources" "$c/tomcat" "$d/repository/resources/security" \
        "$d/repository/logs" "$d/repository/tenants" "$d/repository/database" "$d/dbscripts" \
        "$dep"/synapse-configs/default/{api,sequences,proxy-services,endpoints,local-entries,tasks}
    cp "$p/repository/resources/security/wso2carbon.jks" "$p/repository/resources/security/client-truststore.jks" \
        "$d/repository/resources/security/"
    cp "$p/dbscripts/mysql.sql" "$d/dbscripts/"
    axis2_xml >"$c/axis2/axis2.xml"
    master_datasources "$kind" >"$c/datasources/master-datasources.xml"
    registry_xml >"$c/registry.xml"
    user_mgt_xml >"$c/user-mgt.xml"
    catalina_xml >"$c/tomcat/catalina-server.xml"
    cat >"$dep/synapse-configs/default/sequences/main.xml" <<'EOF'
<sequence xmlns="http://ws.apache.org/ns/synapse" name="main">
    <in>
        <log level="full"/>
        <drop/>
    </in>
    <out>
        <send/>
    </out>
</sequence>
EOF
    cat >"$dep/synapse-configs/default/sequences/fault.xml" <<'EOF'
<sequence xmlns="http://ws.apache.org/ns/synapse" name="fault">
    <log level="full"/>
    <drop/>
</sequence>
EOF
    if [ "$kind" = am ]; then
        carbon_xml "WSO2 API Manager" AM "$v" '${carbon.home}/repository/conf' >"$c/carbon.xml"
        api_manager_xml >"$c/api-manager.xml"
        mkdir -p "$d/lib" "$d/repository/components/lib" "$d/dbscripts/apimgt" "$dep/webapps" \
            "$dep"/jaggeryapps/{publisher,store,admin}
        cp "$p/dbscripts/apimgt/mysql.sql" "$d/dbscripts/apimgt/"
        cp "$work/carbon-standin.jar" "$d/lib/standin.jar"
        start_script wso2server.sh "" lib/standin.jar >"$d/bin/wso2server.sh"
        for app in publisher store admin; do
            printf '{ "displayName": "%s" }\n' "$app" >"$dep/jaggeryapps/$app/jaggery.conf"
        done
        for w in oauth2 authenticationendpoint 'api#am#publisher#v0.9' 'api#am#store#v0.9' \
            'client-registration#v0.9'; do
            war "$dep/webapps" "$w"
        done
        cat >"$dep/synapse-configs/default/api/_TokenAPI_.xml" <<'EOF'
<api xmlns="http://ws.apache.org/ns/synapse" name="_WSO2AMTokenAPI_" context="/token">
    <resource methods="POST" url-mapping="/*" faultSequence="_token_fault_">
        <inSequence>
            <send>
                <endpoint>
                    <address uri="https://localhost:9443/oauth2/token"/>
                </endpoint>
            </send>
        </inSequence>
        <outSequence>
            <send/>
        </outSequence>
    </resource>
</api>
EOF
    else
        carbon_xml "WSO2 Enterprise Integrator" EI "$v" '${carbon.home}/conf' >"$c/carbon.xml"
        mkdir -p "$d/lib" "$d/wso2/lib" "$d/wso2/components" "$dep"/{carbonapps,axis2services,dataservices}
        cp "$work/carbon-standin.jar" "$d/wso2/lib/standin.jar"
        start_script integrator.sh ' -Dcarbon.config.dir.path="$CARBON_HOME/conf"' wso2/lib/standin.jar \
            >"$d/bin/integrator.sh"
    fi
    chmod 0755 "$d"/bin/*.sh
    rm -f "$out/$name.zip"
    (cd "$work" && zip -qr "$out/$name.zip" "$name")
    echo "$out/$name.zip"
}
